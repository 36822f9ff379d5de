"""A CRD upgrade that adds a defaulted field: objects stored before it are served with the default.

A real API server applies the CRD's current structural defaults when it decodes a stored object, so a
read (GET, LIST) after the upgrade returns the new field although nobody wrote it, and the stored object
is unchanged until its next write. The test CRD has its own group so that upgrading it touches nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conformance.conftest import Api, eventually

GROUP = "upgrade.conformance.tradesense.io"
PLURAL = "dials"
CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}"
PROPERTIES = {"target": {"type": "string"}}


def _crd(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": "Dial", "plural": PLURAL, "singular": "dial"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


@pytest.fixture
async def dials(api: Api) -> AsyncIterator[str]:
    await api.delete(CRD_PATH)
    await eventually(lambda: _status_is(api, CRD_PATH, 404), timeout=30)
    await api.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _crd(PROPERTIES))
    await eventually(lambda: _status_is(api, f"/apis/{GROUP}/v1/{PLURAL}", 200), timeout=30)
    yield f"/apis/{GROUP}/v1"
    await api.delete(CRD_PATH)


async def _status_is(api: Api, path: str, status: int) -> bool:
    return (await api.get(path)).status == status


async def test_objects_stored_before_a_new_default_are_read_with_it(api: Api, ns: str, dials: str) -> None:
    path = f"{dials}/namespaces/{ns}/{PLURAL}"
    await api.ok("POST", path, {"apiVersion": f"{GROUP}/v1", "kind": "Dial", "metadata": {"name": "old"},
                                "spec": {"target": "web"}})
    crd = await api.ok("GET", CRD_PATH)
    upgraded = copy.deepcopy(crd)
    spec_schema = upgraded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["mode"] = {"type": "string", "default": "auto"}
    await api.ok("PUT", CRD_PATH, upgraded)

    async def defaulted() -> dict[str, Any] | None:
        obj = await api.ok("GET", f"{path}/old")
        return obj if obj["spec"].get("mode") == "auto" else None

    before = await eventually(defaulted, timeout=30)
    listed = (await api.ok("GET", path))["items"]
    assert [item["spec"].get("mode") for item in listed] == ["auto"]
    assert before["metadata"]["generation"] == 1  # served with the default, not rewritten
    after = await api.ok("PATCH", f"{path}/old", {"metadata": {"labels": {"touched": "yes"}}})
    assert after["spec"] == {"target": "web", "mode": "auto"}
    assert after["metadata"]["generation"] == 1
