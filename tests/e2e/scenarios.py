"""The end-to-end scenarios, as plain functions of an `E2EEnv`, so a real cluster (tests/e2e) and the emulated one
(tests/integration/e2e_emulated) run exactly the same checks.

Each scenario first asserts what needs no running pods (objects written, replicas, env, annotations, status,
Events) and only then waits for readiness: when the pods stay Pending past `readiness_timeout` (a plain API
server without kubelets) it says so and skips the remaining assertions instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import (
    BACKUP_POLICIES,
    DEPLOYMENTS,
    HPAS,
    INCIDENTS,
    REPO_ROOT,
    SCALING_POLICIES,
    SECRETS,
    Kubectl,
    Obj,
    SyncKube,
    condition,
    deployments_available,
    wait_for,
)
from tradesense_operator.clients.errors import Forbidden, NotFound
from tradesense_operator.clients.kube import FIELD_MANAGER, PODS

TERMINAL = ("Succeeded", "Failed", "Cancelled")
API = "ops.tradesense.io/v1alpha1"


@dataclass
class PgTarget:
    """A PostgreSQL the operator can reach (host as the operator sees it)."""

    host: str
    port: int
    database: str
    user: str
    password: str | None = None


@dataclass
class E2EEnv:
    """One cluster under test with the operator running and the simulated namespace installed."""

    kube: SyncKube
    kubeconfig: Path
    namespace: str
    readiness_timeout: float
    backup_root: str
    kubectl_problem: str | None = None
    server_side_apply_problem: str | None = None
    operator_kubeconfig: Path | None = None
    rbac_problem: str | None = None
    pg: PgTarget | None = None
    pg_problem: str = "no PostgreSQL given (set TSO_E2E_PG_HOST, TSO_E2E_PG_PORT, TSO_E2E_PG_DATABASE, TSO_E2E_PG_USER)"
    server_dry_run: bool = True
    operator_timeout: float = 60.0

    @property
    def kubectl(self) -> Kubectl:
        if self.kubectl_problem is not None:
            pytest.skip(self.kubectl_problem)
        return Kubectl(self.kubeconfig)


# -- helpers ---------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def incident(env: E2EEnv, name: str, runbook: str, **spec: Any) -> Obj:
    return {
        "apiVersion": API, "kind": "TradeSenseIncident",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": {"runbook": runbook, "severity": "P3", "target": {"namespace": env.namespace}, **spec},
    }


def phase_of(obj: Obj | None) -> str | None:
    return None if obj is None else (obj.get("status") or {}).get("phase")


def wait_incident(env: E2EEnv, name: str, phases: tuple[str, ...], timeout: float) -> Obj:
    def reached() -> Obj | None:
        obj = env.kube.get(INCIDENTS, name, env.namespace)
        return obj if phase_of(obj) in phases else None

    try:
        found: Obj = wait_for(reached, timeout=timeout, what=f"incident {name} to reach {'/'.join(phases)}")
    except TimeoutError as exc:
        now = env.kube.get(INCIDENTS, name, env.namespace)
        status = now.get("status") or {}
        steps = [(s.get("id"), s.get("state"), s.get("message")) for s in status.get("steps") or []]
        raise AssertionError(f"{exc}; it is {status.get('phase')} at step {status.get('currentStep')}: {steps}") from exc
    return found


def step(obj: Obj, step_id: str) -> Obj:
    """The status entry of one step ({} before the plan is recorded)."""
    return next((s for s in (obj.get("status") or {}).get("steps") or [] if s["id"] == step_id), {})


def env_value(deployment: Obj, container: str, name: str) -> str | None:
    spec = deployment["spec"]["template"]["spec"]
    found = next(c for c in spec["containers"] if c["name"] == container)
    return next((e.get("value") for e in found.get("env") or [] if e["name"] == name), None)


def stable_resource_version(env: E2EEnv, kind: Any, name: str, quiet: float = 2.0, timeout: float = 30.0) -> Obj:
    """The object once nobody has written it for `quiet` seconds (the operator's last bookkeeping done)."""
    last = env.kube.get(kind, name, env.namespace)
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is still being written after {timeout:.0f}s")
        time.sleep(0.25)
        now = env.kube.get(kind, name, env.namespace)
        if now["metadata"]["resourceVersion"] != last["metadata"]["resourceVersion"]:
            last, since = now, time.monotonic()
    return last


def finish_or_cancel(env: E2EEnv, name: str) -> None:
    """Leave no incident running (it would hold the namespace's lock for the next scenario), then delete it."""
    obj = env.kube.get_or_none(INCIDENTS, name, env.namespace)
    if obj is None:
        return
    if phase_of(obj) not in TERMINAL:
        env.kube.patch(INCIDENTS, name, {"spec": {"cancel": True}}, env.namespace)
        with contextlib.suppress(AssertionError):
            wait_incident(env, name, TERMINAL, timeout=30)
    env.kube.delete(INCIDENTS, name, env.namespace)
    try:
        wait_for(lambda: env.kube.get_or_none(INCIDENTS, name, env.namespace) is None, timeout=30,
                 what=f"incident {name} deleted (incidents carry no finalizer)")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: the incident is still there (a finalizer left by someone else?)") from exc


def readiness_or_skip(env: E2EEnv, what: str, check: Any) -> None:
    """Run the readiness-dependent `check`; when pods stay Pending past the timeout, skip it and say so."""
    deadline = time.monotonic() + env.readiness_timeout
    while True:
        try:
            check()
        except AssertionError as exc:
            if time.monotonic() > deadline:
                waiting = deployments_available(env.kube, env.namespace)
                if waiting:
                    pytest.skip(f"pods of {', '.join(waiting)} stayed Pending/unready for {env.readiness_timeout:.0f}s "
                                f"(no kubelet runs them?): skipping the readiness-dependent part — {what}. Last: {exc}")
                raise
        else:
            return
        time.sleep(0.5)


# -- scenarios --------------------------------------------------------------------------------------------


def dry_run(env: E2EEnv) -> Obj:
    """A dry run resolves and records the plan with what each step would change, and touches nothing."""
    before = env.kube.get(DEPLOYMENTS, "backend", env.namespace)
    name = unique("e2e-dry-run")
    env.kube.apply(INCIDENTS, incident(env, name, "high-cpu", dryRun=True, parameters={"replicas": 6, "workers": 2}))
    done = wait_incident(env, name, TERMINAL, timeout=env.operator_timeout)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert [s["state"] for s in status["steps"]] == ["WouldRun"] * len(status["steps"]), status["steps"]
    assert [p["id"] for p in status["plan"]] == ["check-pods", "scale-backend", "set-workers", "backend-rollout"]
    assert "6" in step(done, "scale-backend")["message"], step(done, "scale-backend")
    dry = condition(done, "DryRun")
    assert dry is not None
    assert (dry["status"], dry["reason"]) == ("True", "DryRunComplete"), dry
    after = env.kube.get(DEPLOYMENTS, "backend", env.namespace)
    assert after["spec"]["replicas"] == before["spec"]["replicas"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "a dry run changed the Deployment"
    reasons = [e["reason"] for e in env.kube.events_for(done)]
    assert "DryRunComplete" in reasons, reasons
    return done


def reapply_is_noop(env: E2EEnv, body: Obj) -> None:
    """GitOps: re-applying an unchanged finished incident writes nothing; a metadata-only sync never re-runs it."""
    name = body["metadata"]["name"]
    settled = stable_resource_version(env, INCIDENTS, name)
    assert phase_of(settled) in TERMINAL
    events_before = len(env.kube.events_for(settled))

    env.kube.apply(INCIDENTS, body)  # the same manifest, from the same field manager
    time.sleep(3)  # several operator polls: nothing may react
    again = env.kube.get(INCIDENTS, name, env.namespace)
    assert again["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"], "re-apply wrote the object"
    assert again["metadata"]["generation"] == settled["metadata"]["generation"]
    assert len(env.kube.events_for(again)) == events_before, "re-apply produced Events"

    # A sync that changes only metadata (an Argo CD tracking label) is a write the operator sees — and ignores.
    env.kube.patch(INCIDENTS, name, {"metadata": {"labels": {"app.kubernetes.io/instance": "gitops-sync"}}}, env.namespace)
    time.sleep(3)
    synced = stable_resource_version(env, INCIDENTS, name)
    assert synced["metadata"]["generation"] == settled["metadata"]["generation"]
    assert synced["status"]["phase"] == settled["status"]["phase"]
    assert synced["status"]["steps"] == settled["status"]["steps"], "a finished incident was re-run"
    assert len(env.kube.events_for(synced)) == events_before, "a metadata sync produced Events"


def kubectl_apply_twice_is_unchanged(env: E2EEnv, tmp: Path) -> None:
    """`kubectl apply -f` of the same incident twice: the second is 'unchanged' and writes nothing."""
    kubectl = env.kubectl
    name = unique("e2e-kubectl")
    manifest = tmp / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump(incident(env, name, "high-cpu", dryRun=True)), encoding="utf-8")
    kubectl("apply", "--validate=false", "-f", str(manifest))
    try:
        wait_incident(env, name, TERMINAL, timeout=env.operator_timeout)
        settled = stable_resource_version(env, INCIDENTS, name)
        events_before = len(env.kube.events_for(settled))
        second = kubectl("apply", "--validate=false", "-f", str(manifest))
        assert "unchanged" in second.stdout, second.stdout
        time.sleep(2)
        again = env.kube.get(INCIDENTS, name, env.namespace)
        assert again["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"]
        assert len(env.kube.events_for(again)) == events_before
    finally:
        finish_or_cancel(env, name)


def high_cpu_scale_out(env: E2EEnv) -> None:
    """high-cpu: backend scaled out, WORKERS reduced, a scale floor recorded; then the rollout completes."""
    name = unique("e2e-high-cpu")
    env.kube.apply(INCIDENTS, incident(env, name, "high-cpu", parameters={"replicas": 4, "workers": 2}))
    try:
        def scaled() -> Obj | None:
            dep = env.kube.get(DEPLOYMENTS, "backend", env.namespace)
            ok = dep["spec"]["replicas"] == 4 and env_value(dep, "backend", "WORKERS") == "2"
            return dep if ok else None

        dep = wait_for(scaled, timeout=env.operator_timeout, what="backend scaled to 4 with WORKERS=2")
        managers = {e["manager"] for e in dep["metadata"].get("managedFields") or []}
        assert FIELD_MANAGER in managers, f"the operator's writes name no field manager: {managers}"
        floor = (dep["metadata"].get("annotations") or {}).get("ops.tradesense.io/scale-floor", "")
        floors = json.loads(floor) if floor else []
        mine = [f for f in (floors if isinstance(floors, list) else [floors]) if f["incident"] == f"{env.namespace}/{name}"]
        assert mine, floor
        assert mine[0]["replicas"] == 4, floor
        def recorded() -> Obj | None:  # the effects land before the engine writes the step's result
            obj = env.kube.get(INCIDENTS, name, env.namespace)
            done = [step(obj, s).get("state") for s in ("scale-backend", "set-workers")] == ["Succeeded", "Succeeded"]
            return obj if done else None

        running = wait_for(recorded, timeout=env.operator_timeout, what="scale-backend and set-workers Succeeded")
        assert running["status"].get("respondBy"), "respondBy is set from the severity"

        def succeeded() -> None:
            obj = env.kube.get(INCIDENTS, name, env.namespace)
            assert phase_of(obj) == "Succeeded", (phase_of(obj), obj["status"].get("currentStep"))

        readiness_or_skip(env, "the backend-rollout step and phase Succeeded", succeeded)
        final = env.kube.get(INCIDENTS, name, env.namespace)
        reasons = [e["reason"] for e in env.kube.events_for(final)]
        assert reasons.count("StepSucceeded") == 4, reasons
        assert "IncidentSucceeded" in reasons, reasons
    finally:
        finish_or_cancel(env, name)


def custom_rollout_restart(env: E2EEnv) -> None:
    """custom: one `kubectl rollout restart` of the frontend, then its rollout status."""
    name = unique("e2e-custom")
    before = env.kube.get(DEPLOYMENTS, "frontend", env.namespace)
    steps = [{"id": "restart-frontend", "action": "rollout-restart", "target": "frontend"},
             {"id": "frontend-ready", "action": "rollout-status", "target": "frontend", "timeoutSeconds": 600}]
    env.kube.apply(INCIDENTS, incident(env, name, "custom", steps=steps))
    try:
        def restarted() -> Obj | None:
            dep = env.kube.get(DEPLOYMENTS, "frontend", env.namespace)
            annotations = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
            return dep if "kubectl.kubernetes.io/restartedAt" in annotations else None

        dep = wait_for(restarted, timeout=env.operator_timeout, what="frontend's pod template restartedAt annotation")
        assert dep["metadata"]["generation"] > before["metadata"]["generation"]
        history = (dep["metadata"].get("annotations") or {}).get("ops.tradesense.io/restart-history", "")
        uid = env.kube.get(INCIDENTS, name, env.namespace)["metadata"]["uid"]
        assert f"{uid}/restart-frontend" in history, f"the storm guard's restart history lacks {name}: {history!r}"

        def succeeded() -> None:
            obj = env.kube.get(INCIDENTS, name, env.namespace)
            assert phase_of(obj) == "Succeeded", (phase_of(obj), obj["status"].get("currentStep"))

        readiness_or_skip(env, "the frontend-ready step and phase Succeeded", succeeded)
        final = env.kube.get(INCIDENTS, name, env.namespace)
        assert [s["state"] for s in final["status"]["steps"]] == ["Succeeded", "Succeeded"]
        assert final["status"].get("resolvedAt")
    finally:
        finish_or_cancel(env, name)


def backup_policy(env: E2EEnv) -> None:
    """A BackupPolicy backs up a reachable PostgreSQL on run-now and records a verified backup."""
    if env.pg is None:
        pytest.skip(env.pg_problem)
    pg = env.pg
    name = unique("e2e-backup")
    database: Obj = {"host": pg.host, "port": pg.port, "database": pg.database, "user": pg.user}
    if pg.password:
        env.kube.apply(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                 "metadata": {"name": "tradesense-db-credentials", "namespace": env.namespace},
                                 "stringData": {"password": pg.password}})
        database["passwordSecretRef"] = {"name": "tradesense-db-credentials", "key": "password"}
    body = {"apiVersion": API, "kind": "BackupPolicy",
            "metadata": {"name": name, "namespace": env.namespace, "annotations": {"ops.tradesense.io/run-now": "e2e-1"}},
            "spec": {"database": database, "schedule": "0 3 * * *", "format": "plain-gzip",
                     "storage": {"filesystem": {"path": f"{env.backup_root}/{name}"}},
                     "retention": {"keepLast": 3}, "verify": {"integrity": True, "testRestore": False}}}
    env.kube.apply(BACKUP_POLICIES, body)
    try:
        def backed_up() -> Obj | None:
            obj = env.kube.get(BACKUP_POLICIES, name, env.namespace)
            status = obj.get("status") or {}
            if status.get("lastFailure") and not status.get("lastSuccessfulBackup"):
                raise AssertionError(f"backup failed: {status['lastFailure']}")
            return obj if status.get("lastSuccessfulBackup") else None

        done = wait_for(backed_up, timeout=max(env.operator_timeout, 120), what=f"BackupPolicy {name}'s first backup")
        status = done["status"]
        assert status.get("lastRunNowToken") == "e2e-1"
        record = status["backups"][0]
        assert record["verified"] is True, record
        assert record["bytes"] > 0, record
        assert record["id"].startswith(name), record
        succeeded = condition(done, "LastBackupSucceeded")
        assert succeeded is not None
        assert succeeded["status"] == "True", status
        ready = condition(done, "Ready")
        assert ready is not None
        assert ready["status"] == "True", ready
        if env.kubectl_problem is None:  # the printer columns, as kubectl shows them
            table = env.kubectl("-n", env.namespace, "get", "bp", name).stdout.splitlines()
            assert table[0].split() == ["NAME", "SCHEDULE", "LAST", "SUCCESS", "SIZE", "READY", "AGE"], table
            assert table[1].startswith(name), table
            assert "0 3 * * *" in table[1], table
            assert table[1].split()[-2] == "True", table
    finally:
        env.kube.delete(BACKUP_POLICIES, name, env.namespace)
        wait_for(lambda: env.kube.get_or_none(BACKUP_POLICIES, name, env.namespace) is None, timeout=30,
                 what=f"BackupPolicy {name} deleted")


def scaling_policy(env: E2EEnv) -> None:
    """ScalingPolicy without Prometheus: fallback replicas, then the pause annotation, then an HPA conflict."""
    name = unique("e2e-scaling")
    body = {"apiVersion": API, "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": env.namespace},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend"},
                     "minReplicas": 1, "maxReplicas": 4, "pollingIntervalSeconds": 1,
                     "prometheusUrl": "http://127.0.0.1:9",  # discard port: nothing answers, metrics fail fast
                     "metrics": [{"name": "requests", "preset": "request-rate",
                                  "target": {"type": "AverageValue", "value": 50}}],
                     "fallback": {"failureThreshold": 1, "replicas": 3}}}
    env.kube.apply(SCALING_POLICIES, body)
    hpa_name = f"{name}-hpa"
    try:
        def fallen_back() -> Obj | None:
            obj = env.kube.get(SCALING_POLICIES, name, env.namespace)
            active = condition(obj, "FallbackActive")
            return obj if active is not None and active["status"] == "True" else None

        wait_for(fallen_back, timeout=env.operator_timeout, what=f"{name}'s FallbackActive condition")
        wait_for(lambda: env.kube.get(DEPLOYMENTS, "frontend", env.namespace)["spec"]["replicas"] == 3,
                 timeout=env.operator_timeout, what="frontend scaled to the fallback's 3 replicas")

        env.kube.patch(SCALING_POLICIES, name, {"metadata": {"annotations": {"ops.tradesense.io/paused": "true"}}},
                       env.namespace)

        def paused() -> Obj | None:
            obj = env.kube.get(SCALING_POLICIES, name, env.namespace)
            able = condition(obj, "AbleToScale")
            return obj if able is not None and able["status"] == "False" and able["reason"] == "Paused" else None

        wait_for(paused, timeout=env.operator_timeout, what=f"{name}'s AbleToScale=False/Paused")
        env.kube.patch(DEPLOYMENTS, "frontend", {"spec": {"replicas": 1}}, env.namespace, subresource="scale")
        time.sleep(3)  # three polling intervals
        assert env.kube.get(DEPLOYMENTS, "frontend", env.namespace)["spec"]["replicas"] == 1, "a paused policy scaled"

        env.kube.apply(HPAS, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                              "metadata": {"name": hpa_name, "namespace": env.namespace},
                              "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend"},
                                       "minReplicas": 1, "maxReplicas": 2}})
        env.kube.patch(SCALING_POLICIES, name, {"metadata": {"annotations": {"ops.tradesense.io/paused": None}}},
                       env.namespace)

        def conflicting() -> Obj | None:
            obj = env.kube.get(SCALING_POLICIES, name, env.namespace)
            able = condition(obj, "AbleToScale")
            ok = able is not None and able["status"] == "False" and able["reason"] == "ConflictingAutoscaler"
            return able if ok else None

        able = wait_for(conflicting, timeout=env.operator_timeout, what=f"{name}'s ConflictingAutoscaler condition")
        assert hpa_name in able["message"], able
        if env.kubectl_problem is None:
            table = env.kubectl("-n", env.namespace, "get", "sp", name).stdout.splitlines()
            assert table[0].split() == ["NAME", "TARGET", "MIN", "MAX", "CURRENT", "DESIRED", "AGE"], table
            assert table[1].split()[:4] == [name, "frontend", "1", "4"], table
    finally:
        env.kube.delete(HPAS, hpa_name, env.namespace)
        env.kube.delete(SCALING_POLICIES, name, env.namespace)
        wait_for(lambda: env.kube.get_or_none(SCALING_POLICIES, name, env.namespace) is None, timeout=30,
                 what=f"ScalingPolicy {name} deleted")


def rbac_is_enforced(env: E2EEnv) -> None:
    """The operator runs with its ServiceAccount's token: what deploy/rbac grants works, the rest is Forbidden."""
    if env.rbac_problem is not None or env.operator_kubeconfig is None:
        pytest.skip(env.rbac_problem or "no token for the operator's ServiceAccount")
    operator = SyncKube(env.operator_kubeconfig)
    try:
        assert operator.list(INCIDENTS, env.namespace) is not None
        assert operator.get(DEPLOYMENTS, "backend", env.namespace)["metadata"]["name"] == "backend"
        for forbidden in (lambda: operator.list(SECRETS, env.namespace), lambda: operator.list(SECRETS, "kube-system"),
                          lambda: operator.get(SECRETS, "not-granted", env.namespace)):
            try:
                forbidden()
            except Forbidden:
                continue
            except NotFound as exc:
                raise AssertionError("the ServiceAccount may read Secrets it has no resourceNames grant for") from exc
            raise AssertionError("the ServiceAccount may list Secrets: RBAC is not least privilege")
    finally:
        operator.close()


def server_side_apply_samples(env: E2EEnv) -> None:
    """`kubectl apply --server-side` of every sample is accepted (schema, CEL, list types)."""
    kubectl = env.kubectl
    if env.server_side_apply_problem is not None:
        pytest.skip(env.server_side_apply_problem)
    samples = [doc for path in sorted((REPO_ROOT / "deploy" / "samples").glob("*.yaml"))
               for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    args = ["apply", "--server-side", "--validate=false", "--field-manager=tradesense-e2e"]
    if env.server_dry_run:
        args.append("--dry-run=server")
    done = kubectl(*args, "-f", str(REPO_ROOT / "deploy" / "samples"))
    applied = [line for line in done.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(samples), done.stdout


def kubectl_views(env: E2EEnv, name: str) -> None:
    """`kubectl get tsi` shows the printer columns; `kubectl describe tsi` shows status and the step Events."""
    kubectl = env.kubectl
    table = kubectl("-n", env.namespace, "get", "tsi", name).stdout
    header = table.splitlines()[0].split()
    assert header[:6] == ["NAME", "SEVERITY", "RUNBOOK", "PHASE", "STEP", "AGE"], table
    row = table.splitlines()[1].split()
    assert (row[0], row[1]) == (name, "P3"), table
    assert row[3] in TERMINAL, table
    described = kubectl("-n", env.namespace, "describe", "tsi", name).stdout
    assert f"Name:         {name}" in described, described
    assert "Events:" in described, described
    assert "DryRunComplete" in described, described
    category = kubectl("get", "tradesense", "-A").stdout  # the `tradesense` category lists all three kinds
    assert f"tradesenseincident.ops.tradesense.io/{name}" in category, category


HOLD = "e2e.tradesense.io/hold"  # a finalizer: any cluster keeps a deleted pod Terminating until it is removed


def _live_ready(env: E2EEnv, app: str) -> list[Obj]:
    pods = env.kube.list(PODS, env.namespace, label_selector=f"app={app}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running" and (condition(p, "Ready") or {}).get("status") == "True"]


def evicted_and_terminating_pods(env: E2EEnv) -> None:
    """wait-pods-ready counts only pods that can become Ready (an evicted redis pod is reported, not waited for);
    delete-pods proceeds once the replacement is Ready and names the pod still Terminating."""
    def one_ready() -> None:
        assert _live_ready(env, "redis"), "no Ready redis pod"

    readiness_or_skip(env, "a Ready redis pod to evict", one_ready)
    victim = _live_ready(env, "redis")[0]["metadata"]["name"]
    evicted = {"status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
                          "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed"}]}}
    env.kube.patch(PODS, victim, evicted, env.namespace, subresource="status")
    held: str | None = None
    name = unique("e2e-pods")
    try:
        def replaced() -> None:
            assert {p["metadata"]["name"] for p in _live_ready(env, "redis")} - {victim}, "no Ready replacement yet"

        readiness_or_skip(env, "a replacement for the evicted pod", replaced)
        held = _live_ready(env, "redis")[0]["metadata"]["name"]
        env.kube.patch(PODS, held, {"metadata": {"finalizers": [HOLD]}}, env.namespace)
        steps = [{"id": "wait-redis", "action": "wait-pods-ready", "target": "redis", "timeoutSeconds": 600},
                 {"id": "delete-redis", "action": "delete-pods", "target": "redis", "timeoutSeconds": 600}]
        env.kube.apply(INCIDENTS, incident(env, name, "custom", steps=steps))

        def succeeded() -> None:
            obj = env.kube.get(INCIDENTS, name, env.namespace)
            assert phase_of(obj) == "Succeeded", (phase_of(obj), obj.get("status", {}).get("message"))

        readiness_or_skip(env, "both pod steps and phase Succeeded", succeeded)
        final = env.kube.get(INCIDENTS, name, env.namespace)
        waited = step(final, "wait-redis")
        assert f"{victim} (Evicted)" in waited["evidence"].get("notCounted", ""), waited
        deleted = step(final, "delete-redis")
        assert held in deleted["evidence"].get("stillTerminating", ""), deleted
        pod = env.kube.get(PODS, held, env.namespace)
        assert pod["metadata"].get("deletionTimestamp"), "the held pod is Terminating, never force-deleted"
        assert any(e["reason"] == "StepSucceeded" for e in final["status"].get("timeline", []))
    finally:
        if held is not None and env.kube.get_or_none(PODS, held, env.namespace) is not None:
            env.kube.patch(PODS, held, [{"op": "remove", "path": "/metadata/finalizers"}], env.namespace,
                           patch_type="json")
        env.kube.delete(PODS, victim, env.namespace)
        finish_or_cancel(env, name)
