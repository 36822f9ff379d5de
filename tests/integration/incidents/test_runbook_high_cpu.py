"""high-cpu runbook: scale the backend out (3 → 8), set WORKERS=2 and wait for the rollout; the scale step
never scales down a larger backend, and every step is a no-op when repeated."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.domain.scaling.floor import SCALE_FLOOR_ANNOTATION, parse_scale_floors
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome


async def test_scales_out_sets_workers_and_waits_for_the_new_pods(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("high-cpu")
    assert env.env_of("backend")["WORKERS"] == "4"
    results = await env.run_plan(spec)

    assert results["check-pods"].evidence["pods"] == "3"
    assert env.deployment("backend")["spec"]["replicas"] == 8
    assert results["scale-backend"].message == "backend replicas 3 → 8"
    # the scale-out is held as a floor, so a ScalingPolicy does not scale it straight back in
    floors = parse_scale_floors(env.deployment("backend")["metadata"]["annotations"][SCALE_FLOOR_ANNOTATION])
    assert [(f.replicas, f.incident) for f in floors] == [(8, f"{env.namespace}/{env.incident.name}")]
    assert 1790 <= (floors[0].until - datetime.now(UTC)).total_seconds() <= 1800
    assert env.env_of("backend")["WORKERS"] == "2"
    assert env.env_of("backend")["JWT_SECRET_KEY"] == "<ref>"  # other variables untouched
    template = env.deployment("backend")["spec"]["template"]["metadata"]["annotations"]
    assert template[STAMP_ANNOTATION] == f"{env.incident.uid}/set-workers"
    assert results["backend-rollout"].outcome is Outcome.DONE
    status = env.deployment("backend")["status"]
    assert status["updatedReplicas"] == status["availableReplicas"] == 8
    ready_workers = {
        e["value"] for p in env.pods("backend") for e in p["spec"]["containers"][0]["env"] if e["name"] == "WORKERS"
    }
    assert ready_workers == {"2"}

    again = await env.run_plan(spec)
    assert again["scale-backend"].outcome is Outcome.ALREADY_DONE
    assert len(parse_scale_floors(env.deployment("backend")["metadata"]["annotations"][SCALE_FLOOR_ANNOTATION])) == 1
    assert again["set-workers"].outcome is Outcome.ALREADY_DONE


async def test_scale_out_leaves_a_larger_backend_alone(tradesense: TradesenseEnv) -> None:
    env = tradesense
    env.cluster.patch("apps/v1", "Deployment", "backend", {"spec": {"replicas": 12}}, env.namespace)
    spec = env.spec("high-cpu", parameters={"workers": 3})
    result = await env.run_step(spec, env.step(spec, "scale-backend"))
    assert result.outcome is Outcome.ALREADY_DONE
    assert env.deployment("backend")["spec"]["replicas"] == 12
    await env.run_step(spec, env.step(spec, "set-workers"))
    assert env.env_of("backend")["WORKERS"] == "3"
