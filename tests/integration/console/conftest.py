"""Fixtures for the console tests: the emulated cluster with the TradeSense namespace, the real operator on it,
and the `kubectl-tradesense` script run as the user would run it (a subprocess with the user's kubeconfig).

- `console_env`: a `ConsoleEnv` on the test namespace (four Deployments Ready, a planted signing key) with
  `create(name, spec)`, `incident(name)`, `wait_phase(name, *phases)`, `awaiting_approval(name)`,
  `cli(*args)` (the installed script in a subprocess) and `run(*args)` (the same entry point in-process, for the
  many small calls).
- `console_operator`: the real kopf operator (incident handlers, engine, production actions) on that namespace.
- `APPROVAL_SPEC`: a custom incident whose second step (scale the backend to 5) waits for approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.support.secrets import SecretGuard
from tests.support.waiting import wait_for_phase
from tradesense_operator.cli.console import kubectl_main
from tradesense_operator.config import Settings
from tradesense_sandbox.demo import operator_registry
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle
from tradesense_sandbox.tradesense_namespace import install_tradesense

API_VERSION = "ops.tradesense.io/v1alpha1"
KIND = "TradeSenseIncident"
PLUGIN = str(Path(sys.executable).with_name("kubectl-tradesense"))
OPERATOR_SETTINGS = Settings(step_poll_seconds=0.05, http_port=0, lock_lease_seconds=15)

APPROVAL_SPEC: dict[str, Any] = {
    "runbook": "custom",
    "severity": "P2",
    "steps": [
        {"id": "check-pods", "action": "check-pods"},
        {"id": "scale-backend", "action": "scale", "target": "backend", "params": {"replicas": 5}, "destructive": True},
        {"id": "backend-rollout", "action": "rollout-status", "target": "backend"},
    ],
}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, failing when the bytes are not one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class CliResult:
    """What a plugin invocation printed and returned."""

    code: int
    out: str
    err: str


@dataclass
class ConsoleEnv:
    """The namespace a console test works in, and the user's kubeconfig for it."""

    cluster: EmulatedCluster
    namespace: str
    kubeconfig: Path

    def create(self, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        spec = {**spec, "target": {"namespace": self.namespace, **spec.get("target", {})}}
        return self.cluster.create({"apiVersion": API_VERSION, "kind": KIND,
                                    "metadata": {"name": name, **metadata}, "spec": spec}, self.namespace)

    def incident(self, name: str) -> dict[str, Any]:
        return self.cluster.get(API_VERSION, KIND, name, self.namespace)

    async def wait_phase(self, name: str, *phases: str, timeout: float = 30.0) -> dict[str, Any]:
        return await wait_for_phase(lambda: self.incident(name), *phases, timeout=timeout, what=f"incident {name}")

    async def awaiting_approval(self, name: str, **metadata: Any) -> dict[str, Any]:
        """An incident of APPROVAL_SPEC, returned once the operator holds it at the step that needs approval."""
        self.create(name, APPROVAL_SPEC, **metadata)
        return await self.wait_phase(name, "AwaitingApproval")

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "NO_COLOR": ""}

    async def run(self, *args: str) -> CliResult:
        """The plugin's entry point in this process (saves the interpreter start-up of `cli`)."""
        def call() -> CliResult:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = kubectl_main([*args, "--kubeconfig", str(self.kubeconfig)])
            return CliResult(code, out.getvalue(), err.getvalue())
        return await asyncio.to_thread(call)

    async def cli(self, *args: str, timeout: float = 60.0) -> CliResult:
        """Run `kubectl-tradesense ARGS` as a user would (its own process, the user's kubeconfig)."""
        process = await asyncio.create_subprocess_exec(
            PLUGIN, *args, env=self.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return CliResult(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def console_env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path,
                      secret_guard: SecretGuard) -> ConsoleEnv:
    signing_key = secret_guard.plant(secrets.token_urlsafe(32))
    kube_cluster.pod_ready_delay = 0.05
    await asyncio.to_thread(install_tradesense, kube_cluster, test_namespace, signing_key=signing_key,
                            create_namespace=False)
    return ConsoleEnv(kube_cluster, test_namespace, kubeconfig_path)


@pytest.fixture
def console_operator(console_env: ConsoleEnv, operator_factory: Callable[..., OperatorHandle]) -> OperatorHandle:
    registry = operator_registry(console_env.kubeconfig, OPERATOR_SETTINGS)
    return operator_factory(registry=registry, namespaces=[console_env.namespace], memo=kopf.Memo())
