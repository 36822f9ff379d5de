"""Dry-run descriptions: every step of every runbook describes its would-be change from the current state
("backend replicas 3 → 8", "set READ_ONLY=true … (currently unset)") and describing changes nothing —
not one object's resourceVersion on the emulated API, not one Redis key, not one row."""

from __future__ import annotations

import asyncio
import json

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.api.v1alpha1.incident import Runbook
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_sandbox.schema import fingerprint


def cluster_state(env: TradesenseEnv) -> dict[str, str]:
    state = {}
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Pod"), ("v1", "Secret"), ("v1", "ConfigMap"),
                              ("v1", "Service"), ("apps/v1", "ReplicaSet")):
        for obj in env.cluster.list(api_version, kind, env.namespace):
            state[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return state


async def describe_all(env: TradesenseEnv, runbook: str, **extra: object) -> dict[str, str]:
    spec = env.spec(runbook, **extra)
    return {step.id: await ACTIONS[step.action].describe(env.context(spec, step)) for step in resolve_plan(spec)}


async def test_descriptions_state_the_change_from_the_current_state(tradesense: TradesenseEnv) -> None:
    env = tradesense
    env.redis.set(env.key("session:1"), "t")
    env.redis.set(env.key("cache:analytics:a"), "{}")
    cpu = await describe_all(env, "high-cpu")
    assert cpu["scale-backend"] == "backend replicas 3 → 8; held as a floor for 1800s"
    assert cpu["set-workers"] == "set WORKERS=2 on deployment/backend container backend (currently '4')"
    memory = await describe_all(env, "high-memory")
    assert memory["set-memory-limit"] == "deployment/backend container backend: limits.memory 2Gi → 4Gi"
    assert memory["delete-backend-pods"].startswith("delete 3 pods -l app=backend")
    breach = await describe_all(env, "security-breach")
    assert breach["security-audit"] == "set SECURITY_AUDIT=true on deployment/backend container backend (currently unset)"
    assert breach["force-logout"].startswith("delete 1 keys matching ")
    assert "SCAN+UNLINK" in breach["force-logout"]
    assert breach["rotate-signing-key"].startswith("replace jwt-secret-key in secret/tradesense-secrets")
    perf = await describe_all(env, "performance-degradation")
    assert perf["scale-backend"] == "backend replicas 3 → 10; held as a floor for 1800s"
    assert perf["clear-cache"].startswith("delete 1 keys matching ")
    slow = await describe_all(env, "slow-queries")
    assert slow["create-index"] == ("CREATE INDEX CONCURRENTLY idx_trades_user_date ON trades(user_id, entry_date) "
                                    "WHERE deleted_at IS NULL")
    site = await describe_all(env, "site-down")
    assert site["restart-backend"].startswith("rollout restart deployment/backend: replace its 3 pod(s)")
    assert "this operator does not switch clusters" in site["dr-failover"]
    auth = await describe_all(env, "auth-failure")
    assert auth["reset-session"] == "no parameters.userId: the session reset would be skipped"


async def test_describing_every_runbook_changes_nothing(tradesense: TradesenseEnv) -> None:
    env = tradesense
    env.redis.set(env.key("session:1"), "t")
    env.redis.set(env.key("cache:analytics:a"), "{}")
    before = (cluster_state(env), sorted(env.redis.scan_iter(match=env.key("*"))))
    with env.pg.connect() as conn:
        rows = fingerprint(conn)
    texts: list[str] = []
    for runbook in Runbook:
        if runbook in (Runbook.CUSTOM, Runbook.DATA_CORRUPTION, Runbook.RESTORE_DATABASE):
            continue  # custom has no table; the restore runbooks need a BackupPolicy (their own test)
        texts.extend((await describe_all(env, runbook.value, parameters={"userId": "1", "flushAll": True})).values())
    assert all(texts)
    assert (cluster_state(env), sorted(env.redis.scan_iter(match=env.key("*")))) == before
    with env.pg.connect() as conn:
        assert fingerprint(conn) == rows
    assert env.signing_key not in json.dumps(texts)



async def test_descriptions_read_deployments_from_the_watch_cache_and_follow_changes(tradesense: TradesenseEnv) -> None:
    """A dry run describes from the process's Deployment watch cache: after its first LIST, no Deployment GET
    (nor scale GET) per description, and a change to the Deployment shows in a later description."""
    env = tradesense
    await describe_all(env, "high-memory")  # lists and starts watching the namespace's Deployments
    reads = {verb: env.cluster.stats.total(*verb) for verb in (("get", "deployments"), ("get", "deployments/scale"))}
    memory = await describe_all(env, "high-memory")  # set-resources and wait-pods-ready (its Deployment's replicas)
    assert memory["wait-backend-ready"].startswith("wait until 3 pods -l app=backend")
    assert (await describe_all(env, "high-cpu"))["scale-backend"] == "backend replicas 3 → 8; held as a floor for 1800s"

    env.cluster.patch("apps/v1", "Deployment", "backend", {"spec": {"replicas": 5}}, env.namespace)

    text = ""
    for _ in range(200):  # the watch event arrives within a few loop turns; 10 s at most
        text = (await describe_all(env, "high-cpu"))["scale-backend"]
        if not text.startswith("backend replicas 3"):
            break
        await asyncio.sleep(0.05)
    assert text == "backend replicas 5 → 8; held as a floor for 1800s"
    assert {verb: env.cluster.stats.total(*verb) for verb in reads} == reads
