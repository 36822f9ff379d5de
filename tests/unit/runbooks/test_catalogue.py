"""Runbook catalogue: approvals, the parameter defaults and overrides, targets, the required-parameter errors,
and `custom` step validation.

Each runbook's expected plan (step order, actions, targets) is written once, in docs/runbooks.md: its step
tables are what operators read, and tests/unit/runbooks/test_docs.py holds them equal to `resolve_plan`."""

from __future__ import annotations

from typing import Any

import pytest

from tradesense_operator.api.v1alpha1.incident import Runbook, StepAction, TradeSenseIncidentSpec
from tradesense_operator.domain.runbooks import RUNBOOKS, PlanError, resolve_plan
from tradesense_operator.domain.runbooks.action_specs import ACTION_SPECS

A = StepAction


def spec(runbook: str, **extra: Any) -> TradeSenseIncidentSpec:
    return TradeSenseIncidentSpec.model_validate({"runbook": runbook, **extra})


def test_every_named_runbook_has_a_table() -> None:
    assert {r.value for r in RUNBOOKS} == {r.value for r in Runbook} - {"custom"}


@pytest.mark.parametrize("runbook", sorted(r.value for r in RUNBOOKS))
def test_every_step_quotes_the_runbook_and_carries_the_action_classification(runbook: str) -> None:
    plan = resolve_plan(spec(runbook, parameters={"backupPolicy": "nightly"}))
    assert len({s.id for s in plan}) == len(plan)
    for step in plan:
        assert step.description
        # a runbook may gate a safe action where it takes the application down (never relax a dangerous one)
        assert step.destructive is (ACTION_SPECS[step.action].destructive or (runbook, step.id) in APPROVAL_POINTS)


APPROVAL_POINTS = {("data-corruption", "stop-traffic"), ("restore-database", "read-only")}


def test_only_dangerous_steps_need_approval() -> None:
    approvals = {
        (rb.value, s.id)
        for rb in RUNBOOKS
        for s in resolve_plan(spec(rb.value, parameters={"backupPolicy": "p"}))
        if s.destructive
    }
    assert approvals == {("site-down", "dr-failover"), ("slow-queries", "create-index"),
                         ("data-corruption", "restore"), ("restore-database", "restore")} | APPROVAL_POINTS


def test_complete_failure_restarts_in_dependency_order() -> None:
    ids = [s.id for s in resolve_plan(spec("complete-failure"))]
    order = [ids.index(f"wait-{r}-ready") for r in ("postgres", "redis")] + [
        ids.index(f"{r}-rollout") for r in ("backend", "frontend")]
    assert order == sorted(order)
    assert ids[-1] == "smoke-test"


def test_defaults_follow_the_runbook_numbers() -> None:
    params = {s.id: s.params for s in resolve_plan(spec("high-cpu"))}
    assert params["scale-backend"] == {"replicas": 8, "atLeast": True, "holdSeconds": 1800}
    assert params["set-workers"] == {"name": "WORKERS", "value": "2"}
    perf = {s.id: s.params for s in resolve_plan(spec("performance-degradation"))}
    assert perf["scale-backend"]["replicas"] == 10
    assert perf["clear-cache"] == {"pattern": "cache:analytics:*"}
    mem = {s.id: s.params for s in resolve_plan(spec("high-memory"))}
    assert mem["set-memory-limit"] == {"limitsMemory": "4Gi"}
    restore = {s.id: s.params for s in resolve_plan(spec("restore-database", parameters={"backupPolicy": "p"}))}
    assert restore["stop-traffic"]["replicas"] == 0
    assert restore["start-traffic"]["replicas"] == 3


def test_parameters_override_the_defaults() -> None:
    plan = resolve_plan(spec("high-cpu", parameters={"replicas": 12, "workers": 4}))
    params = {s.id: s.params for s in plan}
    assert params["scale-backend"]["replicas"] == 12
    held = {s.id: s.params for s in resolve_plan(spec("db-pool-exhausted", parameters={"scaleHoldSeconds": 60}))}
    assert held["scale-backend"]["holdSeconds"] == 60
    assert params["set-workers"]["value"] == "4"
    mem = {s.id: s.params for s in resolve_plan(spec("high-memory", parameters={"memoryLimit": "6Gi"}))}
    assert mem["set-memory-limit"] == {"limitsMemory": "6Gi"}
    slow = {s.id: s.params for s in resolve_plan(spec("slow-queries", parameters={
        "slowQueryThresholdMs": 250, "indexName": "idx_x"}))}
    assert slow["log-slow-statements"] == {"ms": 250}
    assert slow["create-index"]["name"] == "idx_x"
    undo = {s.id: s.params for s in resolve_plan(spec("high-error-rate", parameters={"previousRevision": 4}))}
    assert undo["rollback"] == {"toRevision": 4}


def test_target_names_come_from_spec_target() -> None:
    target = {"namespace": "shop", "backend": "api", "postgres": "db", "appLabel": "app.kubernetes.io/name",
              "signingSecret": {"name": "jwt", "key": "signing"}}
    plan = {s.id: s for s in resolve_plan(spec("complete-failure", target=target))}
    assert plan["delete-postgres-pods"].target == "pods/app.kubernetes.io/name=db"
    assert plan["wait-postgres-ready"].params == {"deployment": "db"}
    assert plan["restart-backend"].target == "deployment/api"
    secret = {s.id: s for s in resolve_plan(spec("security-breach", target=target))}
    assert secret["rotate-signing-key"].target == "secret/jwt"
    assert secret["rotate-signing-key"].params == {"key": "signing"}


def test_auth_failure_resets_the_named_users_session_keeping_the_pattern_prefix() -> None:
    plan = {s.id: s for s in resolve_plan(spec("auth-failure", parameters={
        "userId": "user123", "sessionKeyPattern": "t9:session:*"}))}
    assert plan["reset-session"].params == {"key": "t9:session:user123"}
    assert plan["session-count"].params == {"pattern": "t9:session:*", "key": "t9:session:user123"}


def test_auth_failure_without_user_plans_a_reset_that_will_skip() -> None:
    plan = {s.id: s for s in resolve_plan(spec("auth-failure"))}
    assert plan["reset-session"].params == {}
    assert "skipped without parameters.userId" in plan["reset-session"].description


def test_security_breach_never_flushes_unless_asked() -> None:
    default = [s.action for s in resolve_plan(spec("security-breach"))]
    assert A.REDIS_FLUSHALL not in default
    assert A.REDIS_DELETE_PATTERN in default
    flush = {s.id: s for s in resolve_plan(spec("security-breach", parameters={"flushAll": True}))}
    assert "force-logout" not in flush
    assert flush["flushall"].destructive is True


def test_certificate_check_targets_the_api_host() -> None:
    plan = resolve_plan(spec("certificate-expiring", target={"apiUrl": "https://api.tradesense.com:8443/x"}))
    assert plan[0].params == {"host": "api.tradesense.com", "port": 8443, "warnDays": 14}
    no_url = resolve_plan(spec("certificate-expiring"))
    assert no_url[0].params == {"warnDays": 14}


@pytest.mark.parametrize("runbook", ["data-corruption", "restore-database"])
def test_restores_require_a_backup_policy(runbook: str) -> None:
    with pytest.raises(PlanError) as err:
        resolve_plan(spec(runbook))
    assert err.value.field == "spec.parameters.backupPolicy"


def test_plan_is_the_same_every_time() -> None:
    s = spec("site-down", target={"apiUrl": "http://x"})
    assert resolve_plan(s) == resolve_plan(s)


# -- custom ----------------------------------------------------------------------------------------

def custom(*steps: dict[str, Any], **extra: Any) -> TradeSenseIncidentSpec:
    return spec("custom", steps=list(steps), **extra)


def test_custom_steps_become_the_plan_with_resolved_targets() -> None:
    plan = resolve_plan(custom(
        {"id": "restart", "action": "rollout-restart", "target": "frontend"},
        {"id": "scale", "action": "scale", "target": "backend", "params": {"replicas": 6}},
        {"id": "pods", "action": "delete-pods", "target": "redis"},
        {"id": "switch", "action": "switch-service-selector", "target": "backend-service",
         "params": {"value": "green"}},
        {"id": "flush", "action": "redis-flushall"},
        target={"namespace": "shop"},
    ))
    assert [(s.id, s.target) for s in plan] == [
        ("restart", "deployment/frontend"), ("scale", "deployment/backend"), ("pods", "pods/app=redis"),
        ("switch", "service/backend-service"), ("flush", "redis/redis")]
    assert [s.destructive for s in plan] == [False, False, False, False, True]


def test_custom_step_may_require_approval_but_never_drop_it() -> None:
    plan = resolve_plan(custom(
        {"id": "scale", "action": "scale", "target": "backend", "params": {"replicas": 2}, "destructive": True},
        {"id": "idx", "action": "pg-create-index", "destructive": False,
         "params": {"name": "i", "table": "t", "columns": "a"}},
    ))
    assert [s.destructive for s in plan] == [True, True]


def test_custom_scale_takes_replicas_from_parameters() -> None:
    plan = resolve_plan(custom({"id": "s", "action": "scale", "target": "backend"}, parameters={"replicas": 4}))
    assert plan[0].params == {"replicas": 4}


@pytest.mark.parametrize(("steps", "field"), [
    ([{"id": "s", "action": "scale", "target": "backend"}], "spec.steps[0].params.replicas"),
    ([{"id": "s", "action": "scale", "target": "backend", "params": {"replicas": "5"}}],
     "spec.steps[0].params.replicas"),
    ([{"id": "s", "action": "scale", "target": "backend", "params": {"replicas": True}}],
     "spec.steps[0].params.replicas"),
    ([{"id": "r", "action": "rollout-restart"}], "spec.steps[0].target"),
    ([{"id": "r", "action": "rollout-restart", "target": "b", "params": {"force": True}}],
     "spec.steps[0].params.force"),
    ([{"id": "p", "action": "http-probe", "target": "x"}], "spec.steps[0].target"),
    ([{"id": "p", "action": "http-probe", "params": {"expect": "maybe"}}], "spec.steps[0].params.expect"),
    ([{"id": "r", "action": "set-resources", "target": "backend"}], "spec.steps[0].params"),
])
def test_invalid_custom_steps_name_the_field(steps: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(PlanError) as err:
        resolve_plan(custom(*steps))
    assert err.value.field == field
    assert str(err.value).startswith(field)
