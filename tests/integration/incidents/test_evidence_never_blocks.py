"""Evidence never blocks remediation: a diagnosis step whose read fails records the failure as its evidence and
the procedure goes on (issue 12; step_adapters/evidence.py).

On a real cluster the backend's logs are unreadable exactly when a rollback is needed (containers in
ImagePullBackOff answer 400 to `pods/log`); the emulated API answers chosen requests with 400/403/500 here.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tests.integration.incidents.test_runbook_high_error_rate import deploy_bad_release, image
from tests.support.waiting import eventually
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed
from tradesense_operator.services.step_adapters.workloads import REVISION
from tradesense_sandbox.runner import OperatorHandle


@pytest.mark.parametrize(("status", "error"), [(400, "Invalid"), (500, "Unavailable")])
async def test_unreadable_logs_do_not_stop_the_rollback_through_the_operator(
    tradesense: TradesenseEnv, operator: OperatorHandle, status: int, error: str
) -> None:
    env = tradesense
    await deploy_bad_release(env)
    # the previous release's pods stay listed while Terminating (graceful deletion); the log scan reads only the
    # pods that are left, so wait until they are the only ones before choosing which pod's log is readable
    pods = await eventually(lambda: [p["metadata"]["name"] for p in env.pods("backend")
                                     if all(not q["metadata"].get("deletionTimestamp") for q in env.pods("backend"))],
                            what="the old release's pods gone")
    env.cluster.set_pod_log(env.namespace, pods[0], "ERROR boom\nERROR boom\n")
    # every other pod's log answers like a container that never started (400) or a failing kubelet (500)
    for name in pods[1:]:
        env.cluster.inject_fault("GET", rf"/namespaces/{env.namespace}/pods/{name}/log", status=status, times=None)

    env.apply("errors", env.spec("high-error-rate"))
    obj = await env.wait_phase("errors", "Succeeded", "Failed", timeout=60)

    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert image(env) == "tradesense/backend:v2.0.0"  # rolled back
    assert env.deployment("backend")["metadata"]["annotations"][REVISION] == "3"
    logs = next(s for s in obj["status"]["steps"] if s["id"] == "error-logs")
    assert logs["state"] == "Succeeded"
    assert logs["attempts"] == 1
    assert logs["evidence"]["matches"] == "2"  # the readable pod was still scanned
    assert logs["evidence"]["unreadablePods"] == str(len(pods) - 1)
    assert f": {error}: GET " in logs["evidence"]["readError"]
    assert "unreadable" in logs["message"]


async def test_a_forbidden_pod_list_is_the_diagnosis_and_the_scale_out_still_happens(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("high-cpu")
    # the one list of check-pods is forbidden (an operator without `list pods` in the namespace)
    env.cluster.inject_fault("GET", rf"/api/v1/namespaces/{env.namespace}/pods\?", status=403, times=1)

    check = await env.run_step(spec, env.step(spec, "check-pods"))
    scale = await env.run_step(spec, env.step(spec, "scale-backend"))

    assert check.outcome is Outcome.DONE
    assert check.evidence["readError"].startswith("Forbidden: ")
    assert "the procedure goes on" in check.message
    assert scale.outcome is Outcome.DONE
    assert env.deployment("backend")["spec"]["replicas"] == 8


async def test_a_deliberate_verdict_of_a_diagnosis_step_still_fails(tradesense: TradesenseEnv) -> None:
    """Only failed reads become evidence: `pg-isready` with `require: true` against a closed port still fails."""
    env = tradesense
    spec = env.spec("site-down", target={"database": {"host": "127.0.0.1", "port": 1, "database": "x",
                                                      "user": "postgres", "sslmode": "disable"}})
    step = env.step(spec, "pg-isready")
    step = step.model_copy(update={"params": {**step.params, "require": True}})
    with pytest.raises(StepFailed, match="not accepting connections"):
        await asyncio.wait_for(env.run_step(spec, step), timeout=20)
