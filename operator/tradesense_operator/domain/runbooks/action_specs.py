"""What every step action accepts: its target kind, whether it needs approval, and its parameters.

This table is the contract between the catalogue (which writes plans) and the action adapters (which
read them): a plan that passes `check_step` carries exactly the parameters its action understands, so a
typo in a GitOps `custom` step is rejected at planning time, naming the field, instead of half-way
through an incident.

A table and its checks; must not execute anything (services/step_adapters carry the actions out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tradesense_operator.api.v1alpha1.incident import ParamValue, StepAction
from tradesense_operator.domain.runbooks.errors import PlanError


class TargetKind(StrEnum):
    """What a step's `target` string names; the string is `<kind>/<name>` (`api`, `nodes`, `incident` alone)."""

    DEPLOYMENT = "deployment"
    PODS = "pods"            # pods/<label selector>, e.g. pods/app=postgres
    SERVICE = "service"
    SECRET = "secret"  # noqa: S105 - a target kind, not a credential
    CONFIGMAP = "configmap"
    NODES = "nodes"
    POSTGRES = "postgres"    # postgres/<workload>; the connection comes from spec.target.database
    REDIS = "redis"          # redis/<workload>; the connection comes from spec.target.redisConnection
    API = "api"              # the TradeSense API at spec.target.apiUrl
    BACKUP_POLICY = "backuppolicy"
    INCIDENT = "incident"    # the incident itself (notifications)


@dataclass(frozen=True)
class Param:
    """One parameter: its Python type(s), whether a plan must carry it, and what it means."""

    types: tuple[type, ...]
    required: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    """Static facts about one action."""

    target: TargetKind
    destructive: bool
    params: Mapping[str, Param] = field(default_factory=dict)


_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)

ACTION_SPECS: Mapping[StepAction, ActionSpec] = {
    StepAction.HTTP_PROBE: ActionSpec(TargetKind.API, False, {
        "path": Param(_STR, help="URL path below spec.target.apiUrl"),
        "method": Param(_STR, choices=("GET", "POST", "HEAD")),
        "body": Param(_STR, help="JSON request body"),
        "samples": Param(_INT, help="requests to send; >1 reports p50/p95 latency"),
        "expect": Param(_STR, choices=("any", "ok", "no-5xx"),
                        help="any: record the answer as evidence; ok/no-5xx: fail the step otherwise"),
    }),
    StepAction.CHECK_NODES: ActionSpec(TargetKind.NODES, False),
    StepAction.CHECK_PODS: ActionSpec(TargetKind.PODS, False),
    StepAction.PG_ISREADY: ActionSpec(TargetKind.POSTGRES, False, {
        "require": Param(_BOOL, help="fail the step unless the server accepts connections"),
    }),
    StepAction.ROLLOUT_RESTART: ActionSpec(TargetKind.DEPLOYMENT, False),
    StepAction.ROLLOUT_UNDO: ActionSpec(TargetKind.DEPLOYMENT, False, {
        "toRevision": Param(_INT, help="revision to roll back to; default the previous one"),
    }),
    StepAction.ROLLOUT_STATUS: ActionSpec(TargetKind.DEPLOYMENT, False),
    StepAction.SCALE: ActionSpec(TargetKind.DEPLOYMENT, False, {
        "replicas": Param(_INT, required=True),
        "atLeast": Param(_BOOL, help="scale out only: leave a larger replica count alone"),
        "holdSeconds": Param(_INT, help="keep the count as a floor for ScalingPolicies this long"),
        "remember": Param(_BOOL, help="record the count before the change on the Deployment (restore: scale to 0)"),
        "restoreRemembered": Param(_BOOL, help="scale back to the remembered count (replicas is the fallback)"),
    }),
    StepAction.SET_ENV: ActionSpec(TargetKind.DEPLOYMENT, False, {
        "name": Param(_STR, required=True),
        "value": Param(_STR, required=True),
        "container": Param(_STR, help="default: the Deployment's first container"),
    }),
    StepAction.SET_RESOURCES: ActionSpec(TargetKind.DEPLOYMENT, False, {
        "limitsMemory": Param(_STR), "limitsCpu": Param(_STR),
        "requestsMemory": Param(_STR), "requestsCpu": Param(_STR),
        "container": Param(_STR, help="default: the Deployment's first container"),
    }),
    StepAction.DELETE_PODS: ActionSpec(TargetKind.PODS, False),
    StepAction.WAIT_PODS_READY: ActionSpec(TargetKind.PODS, False, {
        "deployment": Param(_STR, help="wait until this Deployment's replica count of pods is Ready"),
    }),
    StepAction.SWITCH_SERVICE_SELECTOR: ActionSpec(TargetKind.SERVICE, False, {
        "key": Param(_STR, help="selector label key; default version"),
        "value": Param(_STR, required=True, help="selector value, e.g. green"),
    }),
    StepAction.DR_FAILOVER: ActionSpec(TargetKind.CONFIGMAP, True),
    StepAction.SECRET_PRESENT: ActionSpec(TargetKind.SECRET, False, {"key": Param(_STR, required=True)}),
    StepAction.SECRET_ROTATE: ActionSpec(TargetKind.SECRET, False, {
        "key": Param(_STR, required=True),
        "length": Param(_INT, help="random bytes in the new value; default 48"),
    }),
    StepAction.REDIS_SESSION_COUNT: ActionSpec(TargetKind.REDIS, False, {
        "pattern": Param(_STR, required=True),
        "key": Param(_STR, help="one session key whose TTL to report"),
    }),
    StepAction.REDIS_DELETE_KEY: ActionSpec(TargetKind.REDIS, False, {
        "key": Param(_STR, help="absent: the step is skipped with the reason"),
    }),
    StepAction.REDIS_DELETE_PATTERN: ActionSpec(TargetKind.REDIS, False, {"pattern": Param(_STR, required=True)}),
    StepAction.REDIS_FLUSHALL: ActionSpec(TargetKind.REDIS, True),
    StepAction.REDIS_BIGKEYS: ActionSpec(TargetKind.REDIS, False, {"sample": Param(_INT), "top": Param(_INT)}),
    StepAction.REDIS_INFO: ActionSpec(TargetKind.REDIS, False),
    StepAction.PG_SLOW_QUERIES: ActionSpec(TargetKind.POSTGRES, False, {
        "minMeanMs": Param(_NUM), "limit": Param(_INT),
    }),
    StepAction.PG_SET_LOG_MIN_DURATION: ActionSpec(TargetKind.POSTGRES, False, {"ms": Param(_INT, required=True)}),
    StepAction.PG_ANALYZE: ActionSpec(TargetKind.POSTGRES, False),
    StepAction.PG_MISSING_INDEXES: ActionSpec(TargetKind.POSTGRES, False),
    StepAction.PG_CREATE_INDEX: ActionSpec(TargetKind.POSTGRES, True, {
        "name": Param(_STR, required=True),
        "table": Param(_STR, required=True),
        "columns": Param(_STR, required=True, help="comma-separated column list"),
        "where": Param(_STR, help="partial-index predicate, e.g. deleted_at IS NULL"),
    }),
    StepAction.PG_IDLE_IN_TRANSACTION: ActionSpec(TargetKind.POSTGRES, False, {"minSeconds": Param(_NUM)}),
    StepAction.PG_DAMAGE_ASSESSMENT: ActionSpec(TargetKind.POSTGRES, False, {"windowSeconds": Param(_INT)}),
    StepAction.PG_DISK_USAGE: ActionSpec(TargetKind.POSTGRES, False, {"limit": Param(_INT)}),
    StepAction.PG_TERMINATE_CONNECTIONS: ActionSpec(TargetKind.POSTGRES, True, {"database": Param(_STR)}),
    StepAction.BACKUP_SAFETY: ActionSpec(TargetKind.BACKUP_POLICY, False, {
        "backupId": Param(_STR), "targetTime": Param(_STR), "targetLSN": Param(_STR)}),
    StepAction.BACKUP_RESTORE: ActionSpec(TargetKind.BACKUP_POLICY, True, {
        "backupId": Param(_STR), "targetTime": Param(_STR), "targetLSN": Param(_STR)}),
    StepAction.LOG_SCAN: ActionSpec(TargetKind.PODS, False, {
        "include": Param(_STR, required=True, help="regular expression a line must match (grep -E)"),
        "exclude": Param(_STR, help="regular expression that drops a line (grep -v)"),
        "tailLines": Param(_INT), "sinceSeconds": Param(_INT),
    }),
    StepAction.CERTIFICATE_CHECK: ActionSpec(TargetKind.API, False, {
        "host": Param(_STR), "port": Param(_INT), "warnDays": Param(_INT),
    }),
    StepAction.SMOKE_TEST: ActionSpec(TargetKind.API, False, {
        "endpoints": Param(_STR, help="comma-separated, below /api/v1/"),
    }),
    StepAction.NOTIFY: ActionSpec(TargetKind.INCIDENT, False, {"message": Param(_STR, required=True)}),
}


def check_params(action: StepAction, params: Mapping[str, ParamValue], where: str) -> None:
    """Reject unknown, missing or mistyped parameters; `where` is the field path used in the error."""
    spec = ACTION_SPECS[action]
    for name, value in params.items():
        param = spec.params.get(name)
        if param is None:
            known = ", ".join(sorted(spec.params)) or "none"
            raise PlanError(f"{where}.{name}", f"unknown parameter for action {action.value} (known: {known})")
        # bool is an int subclass: an int parameter must not silently accept true/false
        if isinstance(value, bool) and bool not in param.types:
            raise PlanError(f"{where}.{name}", f"expected {_type_names(param)}, got a boolean")
        if not isinstance(value, param.types):
            raise PlanError(f"{where}.{name}", f"expected {_type_names(param)}, got {type(value).__name__}")
        if param.choices and value not in param.choices:
            raise PlanError(f"{where}.{name}", f"must be one of {', '.join(param.choices)}, got {value!r}")
    for name, param in spec.params.items():
        if param.required and name not in params:
            raise PlanError(f"{where}.{name}", f"required by action {action.value}")
    if action is StepAction.SET_RESOURCES and not any(k in params for k in _RESOURCE_KEYS):
        raise PlanError(where, f"set-resources needs at least one of {', '.join(_RESOURCE_KEYS)}")


_RESOURCE_KEYS = ("limitsMemory", "limitsCpu", "requestsMemory", "requestsCpu")


def _type_names(param: Param) -> str:
    return " or ".join("number" if t is float else {str: "string", int: "integer", bool: "boolean"}[t]
                       for t in param.types)


def target_ref(kind: TargetKind, name: str = "") -> str:
    """The canonical target string stored in a plan, e.g. deployment/backend or pods/app=postgres."""
    return f"{kind.value}/{name}" if name else kind.value


def split_target(target: str) -> tuple[str, str]:
    """(kind, name) of a target string; name is empty for `api`, `nodes`, `incident`."""
    kind, _, name = target.partition("/")
    return kind, name
