"""site-down runbook: evidence of the outage (probe, nodes, pods, pg_isready), a rollout restart of every
Deployment with the step's stamp, rollouts awaited, and the DR failover recorded only once approved."""

from __future__ import annotations

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome
from tradesense_operator.services.step_adapters.traffic import DR_ACTIVATED_AT


@with_and_without_rbac
async def test_site_down_records_evidence_restarts_everything_and_waits_for_approval_to_fail_over(
    tradesense: TradesenseEnv,
) -> None:
    env = tradesense
    env.app.set_mode(down=True)
    spec = env.spec("site-down", severity="P1")
    before = {app: {p["metadata"]["uid"] for p in env.pods(app)} for app in ("backend", "frontend", "postgres", "redis")}

    results = await env.run_plan(spec)

    probe = results["verify-endpoints"]
    assert probe.outcome is Outcome.DONE  # the outage is evidence, not a failed step
    assert probe.evidence["errors"] == "3"
    assert results["check-pods"].evidence["pods"] == "7"
    assert results["pg-isready"].evidence == {"pgIsReady": "accepting"}
    for app, old in before.items():
        annotations = env.deployment(app)["spec"]["template"]["metadata"]["annotations"]
        assert annotations[STAMP_ANNOTATION] == f"{env.incident.uid}/restart-{app}"
        assert results[f"{app}-rollout"].outcome is Outcome.DONE
        assert {p["metadata"]["uid"] for p in env.pods(app)}.isdisjoint(old)
    assert "dr-failover" not in results  # destructive: not run without approval
    configmap = env.cluster.get("v1", "ConfigMap", "dr-activate", env.namespace)
    assert "activate" not in configmap["data"]

    failover = await env.run_step(spec, env.step(spec, "dr-failover"))  # as the engine does once approved
    assert failover.outcome is Outcome.DONE
    assert "does not switch clusters" in failover.message
    configmap = env.cluster.get("v1", "ConfigMap", "dr-activate", env.namespace)
    assert configmap["data"]["activate"] == "true"
    assert DR_ACTIVATED_AT in configmap["metadata"]["annotations"]
    assert (await env.run_step(spec, env.step(spec, "dr-failover"))).outcome is Outcome.ALREADY_DONE


async def test_failover_without_the_dr_configmap_fails_with_the_manual_command(tradesense: TradesenseEnv) -> None:
    import pytest

    from tradesense_operator.services.step_adapters.base import StepFailed

    env = tradesense
    env.cluster.delete("v1", "ConfigMap", "dr-activate", env.namespace)
    spec = env.spec("site-down")
    with pytest.raises(StepFailed, match="kubectl config use-context tradesense-dr"):
        await env.run_step(spec, env.step(spec, "dr-failover"))
