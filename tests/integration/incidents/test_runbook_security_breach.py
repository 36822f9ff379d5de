"""security-breach runbook: the JWT signing key rotated (new value stored, never shown), every session
deleted with SCAN+UNLINK while other keys stay, SECURITY_AUDIT=true rolled out, and suspicious auth log
lines (not status 200) counted with credentials redacted; FLUSHALL is never planned unless asked."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.secrets import SecretGuard
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed
from tradesense_operator.services.step_adapters.secrets import ROTATED_BY


def stored_key(env: TradesenseEnv) -> str:
    secret = env.cluster.get("v1", "Secret", "tradesense-secrets", env.namespace)
    return base64.b64decode(secret["data"]["jwt-secret-key"]).decode()


async def produce_auth_log(env: TradesenseEnv) -> None:
    async with aiohttp.ClientSession() as session:
        for password in ("wrong-1", "wrong-2"):
            async with session.post(f"{env.app.base_url}/api/v1/auth/login",
                                    json={"email": "mallory@example.com", "password": password}) as response:
                assert response.status == 401
        async with session.get(f"{env.app.base_url}/api/v1/health") as response:
            assert response.status == 200
    env.app.logs.write("INFO", "auth", "login succeeded user=a***@example.com status=200")


async def test_rotates_logs_everyone_out_audits_and_collects_evidence(
    tradesense: TradesenseEnv, secret_guard: SecretGuard
) -> None:
    env = tradesense
    for user in range(5):
        env.redis.set(env.key(f"session:{user}"), "t", ex=600)
    env.redis.set(env.key("cache:analytics:dashboard"), "{}")
    spec = env.spec("security-breach", severity="P1")

    results = await env.run_plan(spec, skip=("suspicious-auth",))

    new_key = secret_guard.plant(stored_key(env))  # fail the test if the new value shows up anywhere
    assert new_key != env.signing_key
    assert len(new_key) >= 43
    secret = env.cluster.get("v1", "Secret", "tradesense-secrets", env.namespace)
    assert secret["metadata"]["annotations"][ROTATED_BY] == f"{env.incident.uid}/rotate-signing-key"
    assert results["rotate-signing-key"].message == (
        "rotated jwt-secret-key in secret/tradesense-secrets (new value not shown)")
    assert results["force-logout"].evidence["deleted"] == "5"
    assert "SCAN+UNLINK" in results["force-logout"].message
    assert env.redis.exists(*(env.key(f"session:{u}") for u in range(5))) == 0
    assert env.redis.exists(env.key("cache:analytics:dashboard")) == 1
    assert env.env_of("backend")["SECURITY_AUDIT"] == "true"
    assert results["backend-rollout"].outcome is Outcome.DONE

    leaked_token = secret_guard.plant("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ")
    await produce_auth_log(env)
    # a client library that logs the bearer token it was refused with (kept out of the app's own log ring)
    extra = f"2026-01-05T14:30:00.000Z WARNING auth token rejected status=401 token={leaked_token}\n"
    for pod in env.pods("backend"):  # the new pods' logs (the old ones went with the rollout)
        env.cluster.set_pod_log(env.namespace, pod["metadata"]["name"], env.app.logs.text() + extra)
    scan = await env.run_step(spec, env.step(spec, "suspicious-auth"))
    assert scan.evidence["pods"] == "3"
    # per pod: 2 failed logins (auth line + access line each) + 1 rejected token; the 200s are excluded
    assert scan.evidence["matches"] == str(3 * 5)
    quoted = json.dumps(dict(scan.evidence))
    assert "status=401" in quoted
    assert "status=200" not in quoted
    assert "token=***" in quoted

    for result in (*results.values(), scan):
        text = result.message + json.dumps(dict(result.evidence))
        assert new_key not in text
        assert env.signing_key not in text

    again = await env.run_step(spec, env.step(spec, "rotate-signing-key"))
    assert again.outcome is Outcome.ALREADY_DONE
    assert stored_key(env) == new_key


async def test_flushall_only_when_asked_and_refused_otherwise(tradesense: TradesenseEnv) -> None:


    env = tradesense
    default = env.spec("security-breach")
    assert "flushall" not in {s.id for s in resolve_plan(default)}
    asked = env.spec("security-breach", parameters={"flushAll": True})
    flush = env.step(asked, "flushall")
    assert flush.destructive is True
    # a plan frozen with flushall but a spec without the flag (never happens via the catalogue) is refused
    with pytest.raises(StepFailed, match=r"parameters\.flushAll is false"):
        await env.run_step(default, flush)
