"""The TradeSenseIncident engine: runs a frozen runbook plan step by step against the cluster.

Orchestration only: the decisions come from `domain/incident`, the effects from the actions in
`services/step_adapters`, and all I/O goes through the injected `Runtime`. kopf is not imported here;
`handlers/incident.py` drives `IncidentEngine.advance` from a daemon, and tests, the demo or a CLI
can drive it the same way.
"""

from tradesense_operator.services.incidents.engine import IncidentEngine
from tradesense_operator.services.incidents.run import Advance

__all__ = ["Advance", "IncidentEngine"]
