"""auth-failure runbook: login probe evidence, signing key presence without its value anywhere, sessions
counted with SCAN under the test prefix, exactly one user's session reset; without a userId the reset is
skipped with the reason."""

from __future__ import annotations

import json

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed


def seed_sessions(env: TradesenseEnv) -> None:
    for user in ("1", "2", "user123"):
        env.redis.set(env.key(f"session:{user}"), f"token-{user}", ex=3600)
    env.redis.set(env.key("cache:analytics:dashboard"), "{}")


async def test_diagnoses_and_resets_one_users_session(tradesense: TradesenseEnv) -> None:
    env = tradesense
    seed_sessions(env)
    env.app.set_mode(auth_broken=True)
    spec = env.spec("auth-failure", severity="P2", parameters={"userId": "user123"})

    results = await env.run_plan(spec)

    assert results["login-probe"].evidence["status"] == "401"
    assert "POST" in results["login-probe"].message
    assert results["signing-secret"].evidence == {"secret": "tradesense-secrets", "key": "jwt-secret-key",
                                                  "present": "true"}
    assert results["session-count"].evidence["sessions"] == "3"
    assert 3500 <= int(results["session-count"].evidence["ttl"].rstrip("s")) <= 3600
    assert results["reset-session"].outcome is Outcome.DONE
    assert env.redis.exists(env.key("session:user123")) == 0
    assert env.redis.exists(env.key("session:1"), env.key("session:2"), env.key("cache:analytics:dashboard")) == 3
    for result in results.values():
        assert env.signing_key not in result.message + json.dumps(dict(result.evidence))

    again = await env.run_step(spec, env.step(spec, "reset-session"))
    assert again.outcome is Outcome.ALREADY_DONE


async def test_without_user_id_the_reset_is_skipped_and_says_why(tradesense: TradesenseEnv) -> None:
    env = tradesense
    seed_sessions(env)
    spec = env.spec("auth-failure")
    results = await env.run_plan(spec)
    assert results["reset-session"].outcome is Outcome.SKIPPED
    assert "spec.parameters.userId is not set" in results["reset-session"].message
    assert env.redis.exists(env.key("session:1"), env.key("session:2"), env.key("session:user123")) == 3


async def test_missing_signing_key_fails_the_check(tradesense: TradesenseEnv) -> None:


    env = tradesense
    env.cluster.patch("v1", "Secret", "tradesense-secrets", {"data": {"jwt-secret-key": None}}, env.namespace)
    spec = env.spec("auth-failure")
    with pytest.raises(StepFailed, match="no non-empty key jwt-secret-key"):
        await env.run_step(spec, env.step(spec, "signing-secret"))
