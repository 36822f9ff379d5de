"""tradesense-operator: the TradeSense production runbook, executed by a Kubernetes operator.

Importing the package registers no handlers and starts nothing (handlers/registry.py does that).
"""

__version__ = "0.1.0"
