"""The emulated store shares what a write did not change between an object's versions instead of copying it,
and serves its snapshots to the HTTP routes without copying: so no write, patch or caller may ever modify a
stored snapshot. These tests hold that line: earlier versions (as watch events and `old` carry them) stay as
they were, and what the facade returns is the caller's own copy."""

from __future__ import annotations

import copy
from typing import Any

from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.patching import apply_patch
from tradesense_sandbox.kubeapi.resources import ResourceType

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                                               "labels": {"app": "web"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "web:1",
                                                   "env": [{"name": "A", "value": "1"}]}]}}},
}


def test_writes_leave_every_earlier_version_as_it_was() -> None:
    cluster = EmulatedCluster(pod_ready_delay=None)  # the store alone: no server, no controllers running
    versions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (object as emitted, a deep copy taken then)

    def listen(rtype: ResourceType, _type: str, obj: dict[str, Any], _old: dict[str, Any] | None) -> None:
        if rtype.kind == "Deployment":
            versions.append((obj, copy.deepcopy(obj)))

    cluster.store.add_listener(listen)
    cluster.create(copy.deepcopy(DEPLOYMENT))
    cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"labels": {"tier": "front"}}}, "default")
    cluster.patch("apps/v1", "Deployment", "web", {"status": {"replicas": 1}}, "default", subresource="status")
    cluster.patch("apps/v1", "Deployment", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}}, "default",
        content_type="application/strategic-merge-patch+json")
    cluster.patch("apps/v1", "Deployment", "web", [{"op": "replace", "path": "/spec/replicas", "value": 3}],
                  "default", content_type="application/json-patch+json")
    assert len(versions) == 5
    for emitted, taken in versions:
        assert emitted == taken
    final = cluster.get("apps/v1", "Deployment", "web", "default")
    assert final["spec"]["replicas"] == 3
    assert [e["name"] for e in final["spec"]["template"]["spec"]["containers"][0]["env"]] == ["A", "B"]
    assert final["metadata"]["labels"] == {"app": "web", "tier": "front"}


def test_what_the_facade_returns_is_the_callers_own_copy() -> None:
    cluster = EmulatedCluster(pod_ready_delay=None)
    created = cluster.create(copy.deepcopy(DEPLOYMENT))
    patched = cluster.patch("apps/v1", "Deployment", "web", {"status": {"replicas": 1}}, "default",
                            subresource="status")
    read = cluster.get("apps/v1", "Deployment", "web", "default")
    for returned in (created, patched, read, *cluster.list("apps/v1", "Deployment", "default")):
        returned["spec"]["template"]["spec"]["containers"][0]["image"] = "changed:9"
        returned["metadata"]["labels"]["app"] = "changed"
    again = cluster.get("apps/v1", "Deployment", "web", "default")
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert again["metadata"]["labels"]["app"] == "web"


def test_patches_never_modify_their_target() -> None:
    target = copy.deepcopy(DEPLOYMENT)
    before = copy.deepcopy(target)
    for content_type, body in (
        ("application/merge-patch+json", {"spec": {"template": {"metadata": {"labels": {"x": "1"}}}}}),
        ("application/strategic-merge-patch+json",
         {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}),
        ("application/json-patch+json", [{"op": "add", "path": "/metadata/labels/y", "value": "2"}]),
    ):
        result = apply_patch(target, content_type, body, strategic_allowed=True)
        assert result != before
        assert target == before
