"""The kustomize base in deploy/ and the operator Deployment's hardening.

Covers: `kubectl kustomize deploy/` renders exactly the CRDs, RBAC, Namespace, ServiceAccount,
Deployment, Service and PodDisruptionBudget (samples excluded; no claim, so the operator schedules on a
cluster without a default StorageClass) with the committed CRDs; the Deployment runs non-root with a
read-only root filesystem, no capabilities, no privilege escalation, seccomp RuntimeDefault, requests and
limits, JSON logs, writable /tmp; two replicas with leader election that can roll (readiness passes on
followers too); the optional component components/backup-volume adds the /backups claim, its mount and
the same-node affinity its RWO claim needs; probes and ports agree with the CLI's liveness endpoint and the operator's
HTTP port setting; every TSO_ variable it sets is a real setting; the Service and PDB select the pods.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.harness import render_deploy
from tests.support.crd_schema import load_crds

from tradesense_operator.cli import build_parser
from tradesense_operator.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
MANAGER = DEPLOY / "manager"
BACKUP_VOLUME = DEPLOY / "components" / "backup-volume"


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the kustomize base (make deps installs nothing for it)")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _kustomize(DEPLOY)


@pytest.fixture(scope="module")
def with_backup_volume() -> list[dict[str, Any]]:
    """The base plus components/backup-volume, as a user's overlay beside a copy of deploy/ renders it."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot render the kustomize base (make deps installs nothing for it)")
    return render_deploy(DEPLOY, components=("backup-volume",))


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return _load(MANAGER / "deployment.yaml")


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_base_renders_the_operator_without_samples(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(f"{document['kind']}/{document['metadata']['name']}" for document in rendered)
    assert kinds == sorted([
        "ClusterRole/tradesense-operator", "ClusterRoleBinding/tradesense-operator",
        "CustomResourceDefinition/backuppolicies.ops.tradesense.io",
        "CustomResourceDefinition/scalingpolicies.ops.tradesense.io",
        "CustomResourceDefinition/tradesenseincidents.ops.tradesense.io",
        "Deployment/tradesense-operator", "Namespace/tradesense-system",
        "PodDisruptionBudget/tradesense-operator",
        "Role/tradesense-operator",
        "Role/tradesense-operator-config", "RoleBinding/tradesense-operator", "RoleBinding/tradesense-operator-config",
        "Service/tradesense-operator", "ServiceAccount/tradesense-operator",
    ])


def test_base_installs_the_committed_crds(rendered: list[dict[str, Any]]) -> None:
    installed = {document["spec"]["names"]["kind"]: document for document in rendered
                 if document["kind"] == "CustomResourceDefinition"}
    assert installed == load_crds()


def test_namespaces_are_not_rewritten(rendered: list[dict[str, Any]]) -> None:
    namespaces = {f"{document['kind']}/{document['metadata']['name']}": document["metadata"].get("namespace")
                  for document in rendered}
    assert namespaces["Role/tradesense-operator"] == "tradesense"
    assert namespaces["RoleBinding/tradesense-operator"] == "tradesense"
    for name in ("Deployment/tradesense-operator", "Service/tradesense-operator", "ServiceAccount/tradesense-operator",
                 "Role/tradesense-operator-config",
                 "PodDisruptionBudget/tradesense-operator",
                 "RoleBinding/tradesense-operator-config"):
        assert namespaces[name] == "tradesense-system", name


def test_rendered_image_is_the_dev_tag(rendered: list[dict[str, Any]]) -> None:
    (deployment,) = [document for document in rendered if document["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "tradesense-operator:dev"


def test_every_kustomization_resource_exists() -> None:
    """Without kubectl this is what still guards the base against a dangling reference."""
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        for resource in _load(kustomization).get("resources", []):
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def test_pod_runs_as_non_root_with_seccomp(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tradesense-operator"
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["runAsGroup"] == 10001
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_is_locked_down(container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert container["name"] == "operator"  # scripts/e2e-kind.sh sets the image by this name
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_requests_and_limits_are_set(container: dict[str, Any]) -> None:
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert set(resources[section]) == {"cpu", "memory"}


def test_writable_paths_are_volumes(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("persistentVolumeClaim" in volume for volume in volumes.values())  # starts without a claim


def test_the_backup_volume_component_mounts_the_claim_on_one_node(with_backup_volume: list[dict[str, Any]]) -> None:
    (claim,) = [d for d in with_backup_volume if d["kind"] == "PersistentVolumeClaim"]
    (deployment,) = [d for d in with_backup_volume if d["kind"] == "Deployment"]
    assert claim["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "tradesense-system"
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/backups"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # the patch kept the hardening
    if claim["spec"]["accessModes"] == ["ReadWriteOnce"]:
        (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def test_logs_are_json_and_every_setting_is_real(container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(container)
    assert env["TSO_LOG_FORMAT"] == "json"
    unknown = {name for name in env if name.startswith(ENV_PREFIX)} - {
        ENV_PREFIX + field.upper() for field in Settings.model_fields
    }
    assert unknown == set()
    plain = {name: value for name, value in env.items() if name.startswith(ENV_PREFIX) and isinstance(value, str)}
    assert plain
    for name, value in plain.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()  # raises, naming the variable, on a value the operator would refuse at start-up
    assert settings.log_format == "json"


def test_probes_match_the_cli_liveness_endpoint_and_the_http_port(container: dict[str, Any]) -> None:
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    liveness = container["livenessProbe"]["httpGet"]
    assert args.liveness == f"http://0.0.0.0:{ports[liveness['port']]}/healthz"
    assert liveness["path"] == "/healthz"
    http_port = int(_env(container).get("TSO_HTTP_PORT", Settings().http_port))
    assert ports["http"] == http_port
    assert ports["health"] != ports["http"]


def test_readiness_passes_on_followers_so_rollouts_can_finish(container: dict[str, Any]) -> None:
    """The follower answers only the liveness endpoint; a probe anywhere else would keep it unready and
    deadlock every rolling update (old leader never removed because the new pod never becomes Ready)."""
    readiness = container["readinessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == (container["livenessProbe"]["httpGet"]["path"],
                                                      container["livenessProbe"]["httpGet"]["port"])


def test_two_replicas_with_leader_election(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    args = build_parser().parse_args(container["args"])
    assert not args.standalone, "two replicas must not both act: leader election (the default) stays on"
    assert not args.namespace, "cluster-wide, as the ClusterRole assumes"
    assert deployment["spec"]["replicas"] == 2
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    pod_name = next(entry for entry in container["env"] if entry["name"] == "POD_NAME")
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    role = _load(DEPLOY / "rbac" / "operator_role.yaml")
    leases = {name for rule in role["rules"] if "leases" in rule["resources"] for name in rule.get("resourceNames", [])}
    assert leases == {args.lease_name}


def test_disruption_budget_keeps_one_pod(deployment: dict[str, Any]) -> None:
    budget = _load(MANAGER / "pdb.yaml")
    assert budget["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_service_selects_the_pods_and_exposes_named_ports(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    service = _load(MANAGER / "service.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container_ports = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} == container_ports


def test_operator_namespace_enforces_restricted_pod_security() -> None:
    labels = _load(MANAGER / "namespace.yaml")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
