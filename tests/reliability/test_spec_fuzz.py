"""hypothesis-generated specs for all three kinds, applied to the emulated API with the real operator
(incident engine, backup timer, scaling timer) running:
- a spec the CRD schema (structural schema + CEL) refuses is answered 422 naming the field;
- an accepted spec the operator's models or planner refuse ends with a condition (incident SpecValid, policy
  Ready / AbleToScale) whose reason is InvalidSpec and whose message names the field;
- an accepted valid spec behaves: a dry-run incident succeeds, a real one against a missing namespace is
  Blocked naming it (or waits for approval), a suspended BackupPolicy is Ready, a paused ScalingPolicy says
  Paused;
- the operator never crashes or wedges: every object settles, and the operator still works afterwards.
Each example mutates ONE field of a valid base spec, so the expected field is known. Bounded and
derandomized (same examples every run); `-m slow` runs a longer variant.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.api.v1alpha1.scaling import ScalingPolicy
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.domain.runbooks import PlanError, resolve_plan
from tradesense_operator.handlers import backup as backup_handlers
from tradesense_operator.handlers import incident as incident_handlers
from tradesense_operator.handlers import scaling as scaling_handlers
from tradesense_operator.services.scaling.evaluation import validate_spec as validate_scaling
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.runner import OperatorHandle, handlers_registry

API = f"{GROUP}/{VERSION}"
CLOSED = "127.0.0.1"  # port 1: every data-plane call is refused at once (nothing real is touched)
NOWHERE = "fuzz-nowhere"  # a target namespace that does not exist: no step can change anything
PAUSED = "ops.tradesense.io/paused"

INCIDENT_BASE: dict[str, Any] = {
    "runbook": "high-cpu", "severity": "P3", "dryRun": True,
    "target": {"namespace": NOWHERE, "apiUrl": "http://127.0.0.1:1",
               "database": {"host": CLOSED, "port": 1, "database": "tradesense", "user": "u"},
               "redisConnection": {"host": CLOSED, "port": 1}},
}
BACKUP_BASE: dict[str, Any] = {
    "database": {"host": CLOSED, "port": 1, "database": "tradesense", "user": "u"},
    "schedule": "0 2 * * *", "suspend": True, "storage": {"filesystem": {"path": "/tmp/tso-fuzz-backups"}},
}
SCALING_BASE: dict[str, Any] = {
    "targetRef": {"name": "backend"}, "minReplicas": 1, "maxReplicas": 3,
    "metrics": [{"name": "rps", "preset": "request-rate", "target": {"type": "AverageValue", "value": 50}}],
}

ANY_VALUE = st.one_of(
    st.integers(-(10**12), 10**12), st.text(max_size=24), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.lists(st.integers(-3, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "name", "value"]), st.integers(-3, 3), max_size=2),
)
# field → values worth trying besides arbitrary JSON (enum neighbours, bounds, bad formats)
INCIDENT_FIELDS: dict[str, list[Any]] = {
    "runbook": ["site-down", "data-corruption", "custom", "reboot-everything", ""],
    "severity": ["P1", "P4", "P0", "critical"],
    "dryRun": [False, "yes"],
    "target.namespace": ["Not_A_Namespace", "", "x" * 70],
    "parameters.replicas": [0, -1, 5, 10_000, "five"],
    "parameters.workers": [0, 2, -4],
    "parameters.memoryLimit": ["1Gi", "lots", "-5Mi"],
    "parameters.userId": ["", "42", 42],
    "parameters.backupPolicy": ["nightly", "", "Bad Name"],
    "parameters.latencyThresholdSeconds": [0, -1, 0.5],
    "parameters.scaleHoldSeconds": [0, -10, 3600],
    "parameters.cacheKeyPattern": ["*", "", "cache:*"],
    "approvals": [["restore"], ["nope", "nope"], "restore"],
    "steps": [[{"id": "s1", "action": "scale", "target": "backend", "params": {"replicas": 2}}],
              [{"id": "s1", "action": "launch-missiles"}], [{"id": "a", "action": "scale"}, {"id": "a", "action": "scale"}],
              []],
}
BACKUP_FIELDS: dict[str, list[Any]] = {
    "schedule": ["*/5 * * * *", "not a cron", "61 * * * *", "0 25 * * *", ""],
    "timeZone": ["Europe/London", "Mars/Olympus_Mons"],
    "format": ["plain-gzip", "custom", "zip"],
    "compressionLevel": [1, 9, 0, 42],
    "retention": [{"keepLast": 3}, {"keepLast": -1}, {"maxAge": "30d"}, {"maxAge": "thirty days"}],
    "storage": [{"filesystem": {"path": "/x"}, "s3": {"bucket": "b"}}, {}, {"filesystem": {"path": ""}}],
    "database.port": [0, 70000, 5432],
    "startingDeadlineSeconds": [-5, 0, 60],
    "suspend": ["no"],
}
SCALING_FIELDS: dict[str, list[Any]] = {
    "minReplicas": [0, 5, -1],
    "maxReplicas": [0, 1, 1000],
    "targetRef.name": ["", "UPPER", "frontend"],
    "metrics": [[], [{"name": "q", "query": "sum(rate(x[1m]))", "preset": "request-rate",
                      "target": {"type": "Value", "value": 1}}],
                [{"name": "q", "query": "sum(", "target": {"type": "Value", "value": 1}}],
                [{"name": "q", "preset": "request-rate", "target": {"type": "Value", "value": -1}}],
                [{"name": "e", "preset": "error-rate", "target": {"type": "AverageValue", "value": 1}}]],
    "pollingIntervalSeconds": [0, 1, 86_400, -3],
    "fallback": [{"failureThreshold": 3, "replicas": 2}, {"failureThreshold": 3, "replicas": 50}],
    "schedules": [[{"name": "open", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5", "timeZone": "Mars/Base",
                    "minReplicas": 2}],
                  [{"name": "open", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5", "timeZone": "America/New_York",
                    "minReplicas": 2}],
                  [{"name": "open", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5", "timeZone": "UTC",
                    "minReplicas": 40}]],
    "vertical": [{"memoryQuery": "max(x)", "minMemory": "8Gi", "maxMemory": "1Gi"}],
    "workers": [{"min": 4, "max": 2, "totalBudget": 8}, {"min": 1, "max": 8, "totalBudget": 16},
                {"min": 1, "max": 4, "totalBudget": 0}],
}


@dataclass
class Case:
    kind: str
    name: str
    field: str   # wire path under spec, e.g. parameters.replicas
    spec: dict[str, Any]
    created: bool = False
    rejection: str = ""
    problem: str | None = None  # the field the operator had to report (accepted but invalid)


def mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec: dict[str, Any] = _deep_copy(base)
    node = spec
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return spec


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def mutations(fields: dict[str, list[Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    """(field, value): three times in four a value chosen for the field, else any JSON value."""
    def values(field: str) -> st.SearchStrategy[Any]:
        chosen = st.sampled_from(fields[field])
        return st.integers(0, 3).flatmap(lambda pick: ANY_VALUE if pick == 3 else chosen)

    return st.sampled_from(sorted(fields)).flatmap(lambda f: st.tuples(st.just(f), values(f)))


# -- the operator under test ---------------------------------------------------------------------

def full_registry(kubeconfig: Path) -> kopf.OperatorRegistry:
    """Incident engine, backup and scaling daemons, like handlers/registry.py, in a private registry."""
    return handlers_registry(kubeconfig, SystemClock(), backup_handlers.register, scaling_handlers.register,
                             incident_handlers.register, settings=Settings(step_poll_seconds=0.05, http_port=0))


@pytest.fixture
def running_operator(kubeconfig_path: Path, test_namespace: str, operator_factory: Callable[..., OperatorHandle]
                     ) -> Iterator[OperatorHandle]:
    handle = operator_factory(registry=full_registry(kubeconfig_path), namespaces=[test_namespace], memo=kopf.Memo())
    yield handle
    assert handle.running, "the operator died while fuzzed objects were processed"


# -- expectations ------------------------------------------------------------------------------

def leaf(path: str) -> str:
    return path.rsplit(".", maxsplit=1)[-1]


def expected_problem(case: Case, stored: dict[str, Any]) -> str | None:
    """The field path the operator must complain about, or None when the spec is valid (our models' verdict)."""
    spec = stored.get("spec") or {}
    try:
        if case.kind == "TradeSenseIncident":
            resolve_plan(TradeSenseIncidentSpec.model_validate(spec))
        elif case.kind == "BackupPolicy":
            from tradesense_operator.services.backups.reconcile import PolicyInvalid, validate_spec
            try:
                validate_spec(spec)
            except PolicyInvalid as exc:
                return str(exc).split(":", 1)[0]
        else:
            validate_scaling(ScalingPolicy.model_validate({"apiVersion": API, "kind": "ScalingPolicy",
                                                           "metadata": {"name": "x"}, "spec": spec}).spec)
    except PlanError as exc:
        return exc.field
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p != "spec")
    except ValueError as exc:  # InvalidScalingSpec and other domain refusals
        return str(getattr(exc, "field", "spec"))
    return None


def invalid_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "InvalidSpec" and condition.get("status") == "False":
            return dict(condition)
    return None


def settled(case: Case, obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if case.kind == "TradeSenseIncident":
        return status.get("phase") in ("Succeeded", "Failed", "Blocked", "AwaitingApproval")
    return bool(status.get("conditions"))


def check(case: Case, obj: dict[str, Any]) -> str | None:
    """None when the object ended as it should, else what is wrong."""
    problem = case.problem = expected_problem(case, obj)
    status = obj.get("status") or {}
    condition = invalid_condition(obj)
    if problem is not None:
        if condition is None:
            return f"invalid at {problem} but no InvalidSpec condition: {status}"
        named = leaf(problem) if problem != "spec" else leaf(case.field)
        if named not in condition["message"]:
            return f"InvalidSpec condition does not name {named} ({problem}): {condition['message']}"
        return None
    if condition is not None:
        return f"valid spec reported invalid: {condition['message']}"
    if case.kind == "TradeSenseIncident":
        phase = status.get("phase")
        if obj["spec"].get("dryRun") is True:
            return None if phase == "Succeeded" else f"dry run ended {phase}: {status.get('message')}"
        if phase == "Blocked" and obj["spec"]["target"]["namespace"] not in str(status.get("message")):
            return f"blocked without naming the missing namespace: {status.get('message')}"
        return None if phase in ("Blocked", "AwaitingApproval") else f"valid incident ended {phase}"
    reasons = {c.get("reason") for c in status.get("conditions") or []}
    expected = "Paused" if case.kind == "ScalingPolicy" else "Valid"
    return None if expected in reasons else f"valid {case.kind} conditions {reasons}"


# -- the test ----------------------------------------------------------------------------------

KINDS = {
    "TradeSenseIncident": (INCIDENT_BASE, INCIDENT_FIELDS),
    "BackupPolicy": (BACKUP_BASE, BACKUP_FIELDS),
    "ScalingPolicy": (SCALING_BASE, SCALING_FIELDS),
}


# Always tried (hypothesis @example): accepted by the schema, refused by the operator.
ALWAYS: dict[str, list[tuple[str, Any]]] = {
    "TradeSenseIncident": [("runbook", "data-corruption"), ("runbook", "restore-database")],
    "BackupPolicy": [("timeZone", "Mars/Olympus_Mons"), ("schedule", "0 25 * * *")],
    "ScalingPolicy": [("schedules", SCALING_FIELDS["schedules"][0]), ("vertical", SCALING_FIELDS["vertical"][0]),
                      ("metrics", SCALING_FIELDS["metrics"][-1])],
}


def fuzz(cluster: EmulatedCluster, namespace: str, kind: str, examples: int) -> list[Case]:
    base, fields = KINDS[kind]
    cases: list[Case] = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(mutations(fields))
    def apply(mutation: tuple[str, Any]) -> None:
        path, value = mutation
        case = Case(kind, f"{kind.lower()[:6]}-{len(cases)}", path, mutate(base, path, value))
        cases.append(case)
        metadata: dict[str, Any] = {"name": case.name, "namespace": namespace}
        if kind == "ScalingPolicy":
            metadata["annotations"] = {PAUSED: "true"}
        try:
            cluster.create({"apiVersion": API, "kind": kind, "metadata": metadata, "spec": case.spec})
        except ApiError as exc:
            case.rejection = f"{exc.code} {exc}"
        else:
            case.created = True
            return
        assert case.rejection.startswith("422 "), f"{kind} {path}={value!r}: {case.rejection}"
        assert re.search(re.escape(leaf(path)), case.rejection, re.IGNORECASE), f"422 does not name {path}: {case.rejection}"

    for always in ALWAYS[kind]:
        apply = example(always)(apply)
    apply()
    return cases


def wait_settled(cluster: EmulatedCluster, namespace: str, cases: list[Case], timeout: float) -> list[str]:
    pending = [c for c in cases if c.created]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if not settled(c, cluster.get(API, c.kind, c.name, namespace))]
        time.sleep(0.2)
    failures = [f"{c.kind}/{c.name} ({c.field}) never settled: {cluster.get(API, c.kind, c.name, namespace).get('status')}"
                for c in pending]
    for case in cases:
        if case.created and case not in pending:
            wrong = check(case, cluster.get(API, case.kind, case.name, namespace))
            if wrong:
                failures.append(f"{case.kind}/{case.name} {case.field}={_field_value(case)!r}: {wrong}")
    return failures


def _field_value(case: Case) -> Any:
    node: Any = case.spec
    for part in case.field.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_fuzz(cluster: EmulatedCluster, namespace: str, examples: int) -> tuple[list[Case], list[str]]:
    cases = [case for kind in KINDS for case in fuzz(cluster, namespace, kind, examples)]
    return cases, wait_settled(cluster, namespace, cases, timeout=90)


# The operator's and the emulator's threads use `random` (jitter, pod names) while hypothesis draws; its
# "random used inside a strategy" check cannot tell their draws from ours, so it is silenced here.
THREADS_USE_RANDOM = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@THREADS_USE_RANDOM
def test_fuzzed_specs_are_rejected_reported_or_run_and_never_wedge_the_operator(
    kube_cluster: EmulatedCluster, test_namespace: str, running_operator: OperatorHandle
) -> None:
    cases, failures = run_fuzz(kube_cluster, test_namespace, examples=40)
    assert not failures, "\n".join(failures)
    assert sum(c.created for c in cases) >= 20
    assert sum(bool(c.rejection) for c in cases) >= 10
    reported = sorted({c.problem for c in cases if c.problem})
    assert len(reported) >= 6, reported  # accepted by the schema, refused by the operator with a condition
    # and the operator still works: a fresh valid incident runs to the end
    kube_cluster.create({"apiVersion": API, "kind": "TradeSenseIncident",
                         "metadata": {"name": "after-the-fuzz", "namespace": test_namespace}, "spec": INCIDENT_BASE})
    after = Case("TradeSenseIncident", "after-the-fuzz", "runbook", INCIDENT_BASE, created=True)
    assert wait_settled(kube_cluster, test_namespace, [after], timeout=30) == []


@pytest.mark.slow
@THREADS_USE_RANDOM
def test_many_fuzzed_specs(kube_cluster: EmulatedCluster, test_namespace: str, running_operator: OperatorHandle) -> None:
    _, failures = run_fuzz(kube_cluster, test_namespace, examples=150)
    assert not failures, "\n".join(failures)
