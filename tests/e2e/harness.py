"""What the end-to-end scenarios run on: a synchronous API client, the install of `deploy/`, the operator process,
the simulated `tradesense` namespace, kubectl, and polling helpers.

Everything here speaks to a cluster only through its API (the admin kubeconfig, or the operator's own
ServiceAccount token), so the same code drives a real cluster and the emulated one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.waiting import wait_until
from tradesense_operator.clients.errors import ClientError, NotFound, Unavailable
from tradesense_operator.clients.kube import CONFIGMAPS, DEPLOYMENTS, EVENTS, NAMESPACES, KubeClient, ResourceKind

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "ops.tradesense.io"
VERSION = "v1alpha1"
E2E_LABEL = "ops.tradesense.io/e2e"
FIELD_MANAGER = "tradesense-e2e"
OPERATOR_NAMESPACE = "tradesense-system"
OPERATOR_SA = "tradesense-operator"
APP_NAMESPACE = "tradesense"
WORKLOADS = ("postgres", "redis", "backend", "frontend")
INCIDENTS = ResourceKind(f"{GROUP}/{VERSION}", "TradeSenseIncident", "tradesenseincidents")
BACKUP_POLICIES = ResourceKind(f"{GROUP}/{VERSION}", "BackupPolicy", "backuppolicies")
SCALING_POLICIES = ResourceKind(f"{GROUP}/{VERSION}", "ScalingPolicy", "scalingpolicies")
HPAS = ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
SECRETS = ResourceKind("v1", "Secret", "secrets")

T = TypeVar("T")
Obj = dict[str, Any]


# -- a synchronous face on the operator's own async client ---------------------------------------------


class SyncKube:
    """`KubeClient` on a private event loop thread, so scenarios are plain functions any test can call."""

    def __init__(self, kubeconfig: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="e2e-kube", daemon=True)
        self._thread.start()
        self.client: KubeClient = self.run(KubeClient.from_kubeconfig(str(kubeconfig)))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.client.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def get(self, kind: ResourceKind, name: str, namespace: str | None = None) -> Obj:
        return self.run(self.client.get(kind, name, namespace))

    def get_or_none(self, kind: ResourceKind, name: str, namespace: str | None = None) -> Obj | None:
        return self.run(self.client.get_or_none(kind, name, namespace))

    def list(self, kind: ResourceKind, namespace: str | None = None, **selectors: str) -> list[Obj]:
        return self.run(self.client.list(kind, namespace, **selectors))

    def create(self, kind: ResourceKind, body: Obj, namespace: str | None = None) -> Obj:
        return self.run(self.client.create(kind, body, namespace))

    def patch(self, kind: ResourceKind, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Obj:
        return self.run(self.client.patch(kind, name, patch, namespace, **kw))

    def delete(self, kind: ResourceKind, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(NotFound):
            self.run(self.client.delete(kind, name, namespace, propagation="Background"))

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.run(self.client.request(method, path, **kw))

    def apply(self, kind: ResourceKind, body: Obj) -> Obj:
        """Server-side apply (what `kubectl apply --server-side` sends)."""
        meta = body["metadata"]
        path = kind.path(meta.get("namespace") if kind.namespaced else None, meta["name"])
        try:
            result: Obj = self.request(
                "PATCH", path, query=[("fieldManager", FIELD_MANAGER), ("force", "true")], body=body,
                content_type="application/apply-patch+yaml",
            )
        except (NotFound, Unavailable) as exc:
            # The emulator does not implement server-side apply yet (415 for apply-patch, requests-H1.md): get it
            # the classic way, create or merge-patch. A real API server never gets here.
            if isinstance(exc, Unavailable) and "apply-patch" not in str(exc):
                raise
            namespace = meta.get("namespace") if kind.namespaced else None
            if self.get_or_none(kind, meta["name"], namespace) is None:
                result = self.request("POST", kind.path(namespace), query=[("fieldManager", FIELD_MANAGER)], body=body)
            else:
                result = self.patch(kind, meta["name"], {k: v for k, v in body.items() if k not in ("apiVersion", "kind")},
                                    namespace)
        return result

    def events_for(self, obj: Obj) -> list[Obj]:
        meta = obj["metadata"]
        selector = f"involvedObject.name={meta['name']},involvedObject.uid={meta['uid']}"
        return self.list(EVENTS, meta.get("namespace"), field_selector=selector)


# -- discovery: which kinds does this server serve, under which plural ---------------------------------


class Discovery:
    """kind → ResourceKind from the server's discovery documents (cached per group/version)."""

    def __init__(self, kube: SyncKube) -> None:
        self._kube = kube
        self._cache: dict[str, dict[str, ResourceKind]] = {}

    def kind(self, api_version: str, kind: str, *, refresh: bool = False) -> ResourceKind | None:
        if refresh or api_version not in self._cache:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self._kube.request("GET", path)
            except NotFound:
                listing = {"resources": []}
            self._cache[api_version] = {
                r["kind"]: ResourceKind(api_version, r["kind"], r["name"], namespaced=bool(r["namespaced"]))
                for r in listing.get("resources") or []
                if "/" not in r["name"]
            }
        return self._cache[api_version].get(kind)


# -- deploy/ ---------------------------------------------------------------------------------------------


def kubectl_missing() -> str | None:
    """Why deploy/ cannot be rendered here (kubectl carries kustomize), or None."""
    if shutil.which("kubectl") is None:
        return "kubectl is not installed: it renders deploy/ (`kubectl kustomize`) and is the client under test"
    return None


def render_deploy(directory: Path = REPO_ROOT / "deploy", components: Sequence[str] = ()) -> list[Obj]:
    """`kubectl kustomize deploy/` — rendered offline, exactly what `kubectl apply -k deploy/` would send.

    With `components` (names under deploy/components/), what a user's overlay beside a copy of deploy/ and crds/
    renders: `resources: [../deploy]` plus those components (kustomize refuses an overlay inside its base).
    """
    if not components:
        return _kustomize(directory)
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        shutil.copytree(directory, root / "deploy")
        shutil.copytree(directory.parent / "crds", root / "crds")
        (root / "overlay").mkdir()
        overlay = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["../deploy"],
                   "components": [f"../deploy/components/{name}" for name in components]}
        (root / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
        return _kustomize(root / "overlay")


def _kustomize(directory: Path) -> list[Obj]:
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


_INSTALL_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role",
                  "ClusterRoleBinding", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
                  "Deployment")


def _order(doc: Obj) -> int:
    kind = doc.get("kind", "")
    return _INSTALL_ORDER.index(kind) if kind in _INSTALL_ORDER else len(_INSTALL_ORDER)


@dataclass
class Installation:
    """What `install` applied, and the kinds this server does not serve (skipped, with the reason kept)."""

    applied: list[tuple[ResourceKind, Obj]] = field(default_factory=list)
    not_served: list[str] = field(default_factory=list)

    @property
    def rbac_served(self) -> bool:
        rbac = ("Role ", "ClusterRole ", "RoleBinding ", "ClusterRoleBinding ")
        return not any(k.startswith(rbac) for k in self.not_served)


def install(kube: SyncKube, documents: Iterable[Obj], *, operator_replicas: int | None = None) -> Installation:
    """Server-side apply every document in dependency order; wait until the CRDs are served."""
    discovery = Discovery(kube)
    result = Installation()
    for doc in sorted(documents, key=_order):
        kind = discovery.kind(doc["apiVersion"], doc["kind"])
        name = f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}".replace(" /", " ")
        if kind is None:
            result.not_served.append(name)
            continue
        body = doc
        if doc["kind"] == "Deployment" and operator_replicas is not None:
            body = {**doc, "spec": {**doc["spec"], "replicas": operator_replicas}}
        result.applied.append((kind, kube.apply(kind, body)))
    wait_for(lambda: all(discovery.kind(f"{GROUP}/{VERSION}", k, refresh=True) is not None
                         for k in ("TradeSenseIncident", "BackupPolicy", "ScalingPolicy")),
             timeout=60, what="the three CRDs to be served")
    return result


def uninstall(kube: SyncKube, installation: Installation, *, timeout: float = 60.0) -> None:
    """Delete in reverse order; custom objects left behind lose their finalizers first (the operator is gone)."""
    for kind in (INCIDENTS, BACKUP_POLICIES, SCALING_POLICIES):
        with contextlib.suppress(ClientError):
            for obj in kube.list(kind):
                meta = obj["metadata"]
                if meta.get("finalizers"):
                    with contextlib.suppress(NotFound):
                        kube.patch(kind, meta["name"], {"metadata": {"finalizers": None}}, meta["namespace"])
                kube.delete(kind, meta["name"], meta["namespace"])
    for kind, obj in reversed(installation.applied):
        meta = obj["metadata"]
        kube.delete(kind, meta["name"], meta.get("namespace") if kind.namespaced else None)
    namespace = next((o for k, o in installation.applied if k.kind == "Namespace"), None)
    if namespace is not None:
        name = namespace["metadata"]["name"]
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: kube.get_or_none(NAMESPACES, name) is None, timeout=timeout, what=f"namespace {name} gone")


# -- the simulated application namespace -------------------------------------------------------------------


def app_deployment(namespace: str, name: str, replicas: int, image: str) -> Obj:
    """A stand-in for one TradeSense workload: the real names, labels and env, a tiny image."""
    env = [{"name": "WORKERS", "value": "4"}] if name == "backend" else []
    container: Obj = {"name": name, "image": image,
                      "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}}
    if env:
        container["env"] = env
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, E2E_LABEL: "true"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }


def create_app_namespace(kube: SyncKube, namespace: str, image: str) -> None:
    """The `tradesense` namespace the runbook works on; refuses to adopt one the suite did not create."""
    existing = kube.get_or_none(NAMESPACES, namespace)
    if existing is not None and (existing["metadata"].get("labels") or {}).get(E2E_LABEL) != "true":
        raise RuntimeError(f"namespace {namespace} already exists and was not created by the e2e suite "
                           f"(no {E2E_LABEL}=true label): refusing to run incidents against it")
    if existing is None:
        kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": namespace, "labels": {E2E_LABEL: "true"}}})
    replicas = {"postgres": 1, "redis": 1, "backend": 2, "frontend": 1}
    for name in WORKLOADS:
        kube.apply(DEPLOYMENTS, app_deployment(namespace, name, replicas[name], image))


def delete_namespace(kube: SyncKube, namespace: str, *, timeout: float = 60.0) -> None:
    kube.delete(NAMESPACES, namespace)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: kube.get_or_none(NAMESPACES, namespace) is None, timeout=timeout,
                 what=f"namespace {namespace} gone")


def deployments_available(kube: SyncKube, namespace: str) -> list[str]:
    """Names of the Deployments whose replicas are not all updated and available (empty = all ready)."""
    waiting = []
    for dep in kube.list(DEPLOYMENTS, namespace):
        want = int(dep["spec"].get("replicas", 1))
        status = dep.get("status") or {}
        if int(status.get("availableReplicas") or 0) < want or int(status.get("updatedReplicas") or 0) < want:
            waiting.append(dep["metadata"]["name"])
    return waiting


# -- the operator -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_account_token(kube: SyncKube, namespace: str, name: str, seconds: int = 3600) -> str:
    """A token for the ServiceAccount from the TokenRequest API (`kubectl create token`)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
    answer = kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body=body)
    return str(answer["status"]["token"])


def token_kubeconfig(admin_kubeconfig: Path, token: str, out: Path, *, namespace: str = "default") -> Path:
    """A kubeconfig for the admin's current cluster that authenticates with `token` only (no admin credentials)."""
    config = yaml.safe_load(admin_kubeconfig.read_text(encoding="utf-8"))
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = dict(next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"]))
    ca_file = cluster.pop("certificate-authority", None)
    if ca_file:
        ca_path = Path(ca_file) if Path(ca_file).is_absolute() else admin_kubeconfig.parent / ca_file
        cluster["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    out.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator", "namespace": namespace}}],
    }), encoding="utf-8")
    out.chmod(0o600)
    return out


class OperatorProcess:
    """`tradesense-operator run` in a subprocess (out-of-cluster), logs to a file, ready when kopf's probe answers."""

    def __init__(self, kubeconfig: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = workdir / "operator.log"
        self.liveness_port = free_port()
        self.http_port = free_port()
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TSO_HTTP_PORT": str(self.http_port),
                    "TSO_LOG_FORMAT": "json", "TSO_STEP_POLL_SECONDS": "0.5", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tradesense_operator", "run", "--standalone",
             f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT,
        )
        log.close()
        try:
            wait_for(self._alive, timeout=timeout, what="the operator's liveness endpoint")
        except TimeoutError:
            self.stop()
            raise
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def cluster_problem(kubeconfig: str | None) -> str | None:
    """Why there is no cluster to test against, or None."""
    if not kubeconfig:
        return ("KUBECONFIG is not set: tests/e2e runs against the cluster it names "
                "(`make e2e` creates a kind cluster; the emulated path runs in tests/integration/e2e_emulated)")
    path = Path(kubeconfig.split(os.pathsep)[0])
    if not path.is_file():
        return f"KUBECONFIG names {path}, which does not exist"
    try:
        kube = SyncKube(path)
    except Exception as exc:  # noqa: BLE001  (any loading failure is a reason to skip, and is reported)
        return f"cannot load the kubeconfig {path}: {type(exc).__name__}: {exc}"
    try:
        kube.request("GET", "/version")
        kube.request("GET", "/api/v1/namespaces", query=[("limit", "1")])
    except Exception as exc:  # noqa: BLE001
        return f"the cluster named by KUBECONFIG ({path}) is unreachable: {type(exc).__name__}: {exc}"
    finally:
        kube.close()
    return None


def foreign_app_namespace(kubeconfig: Path) -> str | None:
    """Why the suite must not run here: a `tradesense` namespace it did not create (real workloads?)."""
    kube = SyncKube(kubeconfig)
    try:
        existing = kube.get_or_none(NAMESPACES, APP_NAMESPACE)
    finally:
        kube.close()
    if existing is not None and (existing["metadata"].get("labels") or {}).get(E2E_LABEL) != "true":
        return (f"namespace {APP_NAMESPACE} already exists and was not created by the e2e suite (no {E2E_LABEL}=true "
                "label): refusing to run incidents against it; use a cluster without it")
    return None


# -- kubectl --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kubectl:
    """The real kubectl client against the cluster under test."""

    kubeconfig: Path

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=120, check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def problem(self) -> str | None:
        """None when kubectl can list namespaces here, else why not (first line of its error)."""
        try:
            done = self("get", "namespaces", "-o", "name", check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"kubectl is not usable: {exc}"
        if done.returncode == 0:
            return None
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return f"kubectl cannot talk to this API server: {lines[-1] if lines else 'exit ' + str(done.returncode)}"


# -- waiting ----------------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """`wait_until`, raising TimeoutError (the scenarios turn a cluster that is too slow into a named problem)."""
    try:
        return wait_until(predicate, timeout, what=what, interval=interval)
    except AssertionError as exc:
        raise TimeoutError(str(exc)) from None


def condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def server_side_apply_problem(kube: SyncKube, namespace: str) -> str | None:
    """None when the server implements server-side apply (create on apply included), else what it answered."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tradesense-e2e-apply-probe",
                                                                   "namespace": namespace}, "data": {"probe": "1"}}
    path = CONFIGMAPS.path(namespace, "tradesense-e2e-apply-probe")
    try:
        kube.request("PATCH", path, query=[("fieldManager", FIELD_MANAGER)], body=probe,
                     content_type="application/apply-patch+yaml")
    except ClientError as exc:
        return f"this API server does not implement server-side apply: {exc}"
    kube.delete(CONFIGMAPS, "tradesense-e2e-apply-probe", namespace)
    return None
