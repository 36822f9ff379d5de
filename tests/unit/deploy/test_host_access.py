"""Policy check across everything the operator ships or creates: no host access, no privilege.

Covers the rendered kustomize base and the backup Job the operator itself creates (executor: job).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec
from tradesense_operator.services.backups import jobs

ROOT = Path(__file__).resolve().parents[3]


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec")
    if template:
        yield template


def _assert_no_host_access(pod: dict[str, Any], where: str) -> None:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), f"{where}: {flag}"
    for volume in pod.get("volumes") or []:
        assert "hostPath" not in volume, f"{where}: hostPath volume {volume['name']}"
    assert (pod.get("securityContext") or {}).get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        context = container.get("securityContext") or {}
        assert not context.get("privileged"), f"{where}/{container['name']}: privileged"
        assert context.get("allowPrivilegeEscalation") is False, f"{where}/{container['name']}: privilege escalation"
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}/{container['name']}: capabilities"
        assert not container.get("ports") or all("hostPort" not in p for p in container["ports"]), where


def test_rendered_base_has_no_host_access() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    text = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy")], capture_output=True, text=True,
                          check=True).stdout
    pods = [(f"{o['kind']}/{o['metadata']['name']}", p) for o in yaml.safe_load_all(text) if o for p in _pod_specs(o)]
    assert pods, "no workload rendered"
    for where, pod in pods:
        _assert_no_host_access(pod, where)


@pytest.mark.parametrize("storage", [{"filesystem": {"path": "/backups/prod"}},
                                     {"s3": {"bucket": "backups", "credentialsSecretRef": "s3-creds"}}])
def test_backup_job_the_operator_creates_has_no_host_access(storage: dict[str, Any]) -> None:
    spec = BackupPolicySpec.model_validate({
        "executor": "job", "jobImage": "ghcr.io/x/tradesense-operator:1", "storage": storage,
        "jobVolumeClaimName": "backups", "database": {"serviceName": "postgres"},
    })
    job = jobs.build_job(policy="prod", namespace="ts", uid="u1", spec=spec, name=jobs.job_name("prod", "20260105-020000"))
    _assert_no_host_access(job["spec"]["template"]["spec"], "backup Job")
