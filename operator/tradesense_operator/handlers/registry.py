"""Importing this module registers every kopf handler of the operator (one import per kind).

Owns only the list of handler modules; must not define handlers itself.
"""

from tradesense_operator.handlers import (
    backup,  # noqa: F401  (BackupPolicy schedules, run-now)
    http,  # noqa: F401  (metrics, health, alert bridge)
    incident,  # noqa: F401  (TradeSenseIncident engine daemon, approval/cancel wake-ups, lock release)
    pitr,  # noqa: F401  (BackupPolicy point-in-time archiver daemon)
    scaling,  # noqa: F401  (ScalingPolicy evaluation timer)
    startup,  # noqa: F401  (kopf settings and the Runtime)
)
