"""Every StepAction mapped to its adapter; the engine looks actions up here and nowhere else."""

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

_ALL: tuple[Action, ...] = (
    HttpProbe(), CheckNodes(), CheckPods(), PgIsReady(),
    RolloutRestart(), RolloutUndo(), RolloutStatus(), Scale(), SetEnv(), SetResources(),
    DeletePods(), WaitPodsReady(), SwitchServiceSelector(), DrFailover(),
    SecretPresent(), SecretRotate(),
    RedisSessionCount(), RedisDeleteKey(), RedisDeletePattern(), RedisFlushall(), RedisBigkeys(), RedisInfo(),
    PgSlowQueries(), PgSetLogMinDuration(), PgAnalyze(), PgMissingIndexes(), PgCreateIndex(),
    PgIdleInTransaction(), PgDamageAssessment(), PgDiskUsage(), PgTerminateConnections(),
    BackupSafety(), BackupRestore(), LogScan(), CertificateCheck(), SmokeTest(), Notify(),
)

ACTIONS: Mapping[StepAction, Action] = MappingProxyType({action.name: action for action in _ALL})
