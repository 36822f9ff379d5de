"""complete-failure runbook against the emulated API, the stand-in app, real PostgreSQL and Redis:
postgres → redis → backend → frontend, each replaced and Ready before the next is touched; the smoke test
of health, trades, analytics and auth; and a resumed delete step that never deletes the replacements."""

from __future__ import annotations

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome, StepFailed
from tradesense_operator.services.step_adapters.workloads import RESTARTED_AT

ORDER = ("postgres", "redis", "backend", "frontend")


def live(env: TradesenseEnv, app: str) -> list[dict]:
    """The app's pods that are not Terminating (an old pod may still be stopping when a rollout is complete)."""
    return [p for p in env.pods(app) if not p["metadata"].get("deletionTimestamp")]


def uids(env: TradesenseEnv, app: str) -> set[str]:
    return {p["metadata"]["uid"] for p in live(env, app)}


def all_ready(env: TradesenseEnv, app: str) -> bool:
    pods = live(env, app)
    return bool(pods) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])) for p in pods
    )


async def test_restart_sequence_replaces_each_tier_and_waits_for_it_before_the_next(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    before = {app: uids(env, app) for app in ORDER}
    results = {}
    for step in resolve_plan(spec):
        results[step.id] = await env.run_step(spec, step)
        if step.id.startswith(("wait-", "backend-rollout", "frontend-rollout")):
            app = step.id.removeprefix("wait-").split("-")[0]
            tier = ORDER.index(app)
            # this tier is fully replaced and Ready …
            assert all_ready(env, app), step.id
            assert uids(env, app).isdisjoint(before[app]), f"{app} pods not replaced"
            # … and nothing later in the sequence has been touched yet
            for later in ORDER[tier + 1:]:
                assert uids(env, later) == before[later], f"{later} restarted before {app} was ready"

    assert results["page-oncall"].outcome is Outcome.SKIPPED
    assert "spec.notification is not set" in results["page-oncall"].message
    for app in ("backend", "frontend"):
        annotations = env.deployment(app)["spec"]["template"]["metadata"]["annotations"]
        assert annotations[STAMP_ANNOTATION] == f"{env.incident.uid}/restart-{app}"
        assert RESTARTED_AT in annotations
    for app in ("postgres", "redis"):  # deleted pods, not a template change
        assert STAMP_ANNOTATION not in (env.deployment(app)["spec"]["template"]["metadata"].get("annotations") or {})
    smoke = results["smoke-test"]
    assert smoke.outcome is Outcome.DONE
    assert set(smoke.evidence) == {"health", "trades", "analytics", "auth"}


async def test_resumed_delete_step_deletes_only_the_pods_it_recorded(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    delete = env.step(spec, "delete-postgres-pods")
    original = uids(env, "postgres")
    first = await env.run_step(spec, delete)
    assert first.outcome is Outcome.DONE
    recorded = dict(item.split("=") for item in env.checkpoints["delete-postgres-pods"]["pods"].split(","))
    assert set(recorded.values()) == original  # the victims were saved before the first deletion
    await env.run_step(spec, env.step(spec, "wait-postgres-ready"))
    replacements = uids(env, "postgres")
    assert replacements.isdisjoint(original)

    # the operator crashed after deleting and restarts the same step with its checkpoint
    again = await env.run_step(spec, delete)
    assert again.outcome is Outcome.DONE
    assert uids(env, "postgres") == replacements  # the replacements were left alone


async def test_rollout_restart_is_done_once_per_step(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    restart = env.step(spec, "restart-backend")
    assert (await env.run_step(spec, restart)).outcome is Outcome.DONE
    generation = env.deployment("backend")["metadata"]["generation"]
    assert (await env.run_step(spec, restart)).outcome is Outcome.ALREADY_DONE
    assert env.deployment("backend")["metadata"]["generation"] == generation


async def test_smoke_test_fails_while_the_app_is_down(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    env.app.set_mode(down=True)
    with pytest.raises(StepFailed, match="smoke test FAILED: health"):
        await env.run_step(spec, env.step(spec, "smoke-test"))
