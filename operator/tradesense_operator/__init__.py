"""tradesense-operator: the TradeSense production runbook, executed by a Kubernetes operator."""

__version__ = "0.1.0"
