"""The in-process operator runner drives the real kopf against the emulated API server.

Covers: a handler's effect lands in the object's status; kopf's Events are posted; a graceful stop
runs cleanup handlers; a startup failure is re-raised to the test; `kill()` abandons a handler
mid-step and a second operator on the same cluster finishes the work; namespaced mode ignores
other namespaces; the kubeconfig written by the emulator is accepted as a target.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
from tests.support.kube import OperatorFactory

from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import run_operator

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "runnerwidgets.runner.example.io"},
    "spec": {
        "group": "runner.example.io",
        "scope": "Namespaced",
        "names": {"kind": "RunnerWidget", "plural": "runnerwidgets", "singular": "runnerwidget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 3}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def widget_cluster(fresh_kube_cluster: EmulatedCluster) -> EmulatedCluster:
    fresh_kube_cluster.install_crd(WIDGET_CRD)
    fresh_kube_cluster.create_namespace("apps")
    fresh_kube_cluster.create_namespace("other")
    return fresh_kube_cluster


def widget(name: str, namespace: str = "apps") -> dict[str, Any]:
    return {
        "apiVersion": "runner.example.io/v1",
        "kind": "RunnerWidget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {},
    }


def status_of(cluster: EmulatedCluster, name: str, namespace: str = "apps") -> dict[str, Any]:
    obj = cluster.find("runner.example.io/v1", "RunnerWidget", name, namespace)
    return (obj or {}).get("status") or {}


def test_handler_result_lands_in_status_and_events_are_posted(widget_cluster: EmulatedCluster) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.create("runner.example.io", "v1", "runnerwidgets", id="created", registry=registry)
    def created(spec: dict[str, Any], body: Any, **_: Any) -> dict[str, Any]:
        kopf.info(body, reason="Built", message=f"built size {spec['size']}")
        return {"size": spec["size"]}

    with run_operator(widget_cluster, registry=registry):
        widget_cluster.create(widget("w1"))
        wait_for(lambda: status_of(widget_cluster, "w1").get("created"))
        events = wait_for(lambda: widget_cluster.events("apps", involved_name="w1"))

    assert status_of(widget_cluster, "w1")["created"] == {"size": 3}
    assert events[0]["reason"] == "Built"
    assert events[0]["message"] == "built size 3"


def test_graceful_stop_runs_cleanup_handlers(widget_cluster: EmulatedCluster, tmp_path: Path) -> None:
    registry = kopf.OperatorRegistry()
    cleaned = threading.Event()

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        cleaned.set()

    kubeconfig = widget_cluster.write_kubeconfig(tmp_path / "kubeconfig")
    with run_operator(kubeconfig, registry=registry) as handle:
        assert handle.running
    assert cleaned.is_set()
    assert not handle.running


def test_startup_failure_is_raised_to_the_caller(widget_cluster: EmulatedCluster) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def broken(**_: Any) -> None:
        raise kopf.PermanentError("configuration is unusable")

    with pytest.raises(RuntimeError, match="crashed during startup"), run_operator(widget_cluster, registry=registry):
        pass


def test_killed_operator_leaves_work_to_its_successor(
    widget_cluster: EmulatedCluster, operator_factory: OperatorFactory
) -> None:
    registry = kopf.OperatorRegistry()
    entered = threading.Event()
    calls: list[str] = []

    @kopf.on.create("runner.example.io", "v1", "runnerwidgets", id="slow_once", registry=registry)
    async def slow_once(name: str, **_: Any) -> str:
        calls.append(name)
        if len(calls) == 1:
            entered.set()
            await asyncio.sleep(3600)  # the "crash" happens in here
        return "done"

    first = operator_factory(registry=registry, cluster=widget_cluster)
    widget_cluster.create(widget("w2"))
    assert entered.wait(10)
    first.kill()
    assert not first.running
    assert "slow_once" not in status_of(widget_cluster, "w2")

    operator_factory(registry=registry, cluster=widget_cluster)
    wait_for(lambda: status_of(widget_cluster, "w2").get("slow_once") == "done")
    assert calls == ["w2", "w2"]


def test_namespaced_operator_ignores_other_namespaces(
    widget_cluster: EmulatedCluster, operator_factory: OperatorFactory
) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.create("runner.example.io", "v1", "runnerwidgets", id="created", registry=registry)
    def created(namespace: str, **_: Any) -> str:
        return namespace

    operator_factory(registry=registry, namespaces=["apps"], cluster=widget_cluster)
    widget_cluster.create(widget("elsewhere", namespace="other"))
    widget_cluster.create(widget("here"))
    wait_for(lambda: status_of(widget_cluster, "here").get("created") == "apps")
    assert "created" not in status_of(widget_cluster, "elsewhere", namespace="other")
