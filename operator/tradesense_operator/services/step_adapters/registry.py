"""Every StepAction mapped to its adapter; the engine looks actions up here and nowhere else.

Owns only the mapping; must not implement actions (their modules do).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.services.step_adapters.backups import BackupRestore, BackupSafety
from tradesense_operator.services.step_adapters.base import Action
from tradesense_operator.services.step_adapters.cache import (
    RedisBigkeys,
    RedisDeleteKey,
    RedisDeletePattern,
    RedisFlushall,
    RedisInfo,
    RedisSessionCount,
)
from tradesense_operator.services.step_adapters.database import (
    PgAnalyze,
    PgCreateIndex,
    PgDamageAssessment,
    PgDiskUsage,
    PgIdleInTransaction,
    PgIsReady,
    PgMissingIndexes,
    PgSetLogMinDuration,
    PgSlowQueries,
    PgTerminateConnections,
)
from tradesense_operator.services.step_adapters.evidence import Diagnosis
from tradesense_operator.services.step_adapters.logscan import LogScan
from tradesense_operator.services.step_adapters.notify import Notify
from tradesense_operator.services.step_adapters.pods import CheckNodes, CheckPods, DeletePods, WaitPodsReady
from tradesense_operator.services.step_adapters.probes import CertificateCheck, HttpProbe, SmokeTest
from tradesense_operator.services.step_adapters.secrets import SecretPresent, SecretRotate
from tradesense_operator.services.step_adapters.traffic import DrFailover, SwitchServiceSelector
from tradesense_operator.services.step_adapters.workloads import (
    RolloutRestart,
    RolloutStatus,
    RolloutUndo,
    Scale,
    SetEnv,
    SetResources,
)

# Read-only diagnosis: a failed read is their evidence, never a reason to stop before the remediation that
# follows (step_adapters/evidence.py). HttpProbe records a failed answer itself (expect: any) and fails on purpose
# otherwise; SmokeTest, RolloutStatus and WaitPodsReady verify a remediation and must keep failing.
_DIAGNOSIS: tuple[Action, ...] = tuple(Diagnosis(action) for action in (
    CheckNodes(), CheckPods(), PgIsReady(), SecretPresent(),
    RedisSessionCount(), RedisBigkeys(), RedisInfo(),
    PgSlowQueries(), PgMissingIndexes(), PgIdleInTransaction(), PgDamageAssessment(), PgDiskUsage(),
    LogScan(), CertificateCheck(),
))

_ALL: tuple[Action, ...] = (
    *_DIAGNOSIS,
    HttpProbe(), RolloutRestart(), RolloutUndo(), RolloutStatus(), Scale(), SetEnv(), SetResources(),
    DeletePods(), WaitPodsReady(), SwitchServiceSelector(), DrFailover(), SecretRotate(),
    RedisDeleteKey(), RedisDeletePattern(), RedisFlushall(),
    PgSetLogMinDuration(), PgAnalyze(), PgCreateIndex(), PgTerminateConnections(),
    BackupSafety(), BackupRestore(), SmokeTest(), Notify(),
)

ACTIONS: Mapping[StepAction, Action] = MappingProxyType({action.name: action for action in _ALL})
