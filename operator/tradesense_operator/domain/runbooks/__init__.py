"""Runbooks as data: which steps each TradeSense procedure runs, in which order, with which parameters.

Pure: resolving a plan reads only the incident spec, so `tradesense-operator plan` (offline) and the
operator (in-cluster) freeze exactly the same plan.
"""

from tradesense_operator.domain.runbooks.catalogue import RUNBOOKS, resolve_plan
from tradesense_operator.domain.runbooks.errors import PlanError

__all__ = ["RUNBOOKS", "PlanError", "resolve_plan"]
