"""A CRD upgrade that adds a defaulted field: objects stored before it are served with the default.

A real API server applies the CRD's current structural defaults when it decodes a stored object, so a
read (GET, LIST) after the upgrade returns the new field although nobody wrote it, and the stored object
is unchanged until its next write. The test CRD has its own group so that upgrading it touches nothing else.

Validation of an update against a CRD that became stricter: a field the update does not change is not validated
again (the API server's validation ratcheting, on by default since 1.30), a changed one is, and a status error
still names its full path. The emulator ratchets per top-level field (spec, status): a status write does not
re-validate the spec.
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
METERS = "meters"
METERS_CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{METERS}.{GROUP}"


def _crd(properties: dict[str, Any], *, kind: str = "Dial", status: dict[str, Any] | None = None) -> dict[str, Any]:
    """The test CRD: `properties` under spec; with `status` properties, a status subresource too."""
    plural = f"{kind.lower()}s"
    schema: dict[str, Any] = {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}}
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if status is not None:
        schema["properties"]["status"] = {"type": "object", "properties": status}
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [version],
        },
    }


async def _installed(api: Api, crd: dict[str, Any]) -> AsyncIterator[str]:
    """Install `crd` afresh for one test; yields its group/version path, and removes it afterwards."""
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    await api.delete(path)
    await eventually(lambda: _status_is(api, path, 404), timeout=30)
    await api.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    await eventually(lambda: _status_is(api, f"/apis/{GROUP}/v1/{crd['spec']['names']['plural']}", 200), timeout=30)
    yield f"/apis/{GROUP}/v1"
    await api.delete(path)


@pytest.fixture
async def dials(api: Api) -> AsyncIterator[str]:
    async for path in _installed(api, _crd(PROPERTIES)):
        yield path


@pytest.fixture
async def meters(api: Api) -> AsyncIterator[str]:
    async for path in _installed(api, _crd({"label": {"type": "string"}}, kind="Meter",
                                           status={"count": {"type": "integer", "minimum": 0}})):
        yield path


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


async def test_an_unchanged_field_is_not_revalidated_a_changed_one_is(api: Api, ns: str, meters: str) -> None:
    path = f"{meters}/namespaces/{ns}/{METERS}"
    await api.ok("POST", path, {"apiVersion": f"{GROUP}/v1", "kind": "Meter", "metadata": {"name": "m"},
                                "spec": {"label": "far-too-long"}})
    crd = await api.ok("GET", METERS_CRD_PATH)
    stricter = copy.deepcopy(crd)
    spec_schema = stricter["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["label"]["maxLength"] = 3  # a schema keyword and a CEL rule the spec now breaks
    spec_schema["x-kubernetes-validations"] = [{"rule": "self.label != 'far-too-long'", "message": "not that one"}]
    await api.ok("PUT", METERS_CRD_PATH, stricter)

    async def tightened() -> bool:
        probe = await api.patch(f"{path}/m", {"spec": {"label": "still-too-long"}})
        return probe.status == 422 and "spec.label" in str(probe.body)

    await eventually(tightened, timeout=30)  # a changed field meets the new schema
    status = await api.ok("PATCH", f"{path}/m/status", {"status": {"count": 2}})  # the spec is unchanged
    assert status["status"] == {"count": 2}
    assert status["spec"]["label"] == "far-too-long"
    bad = await api.patch(f"{path}/m/status", {"status": {"count": -1}})
    assert bad.status == 422
    assert "status.count" in bad.body["message"], bad.body
    assert (await api.ok("GET", f"{path}/m"))["status"] == {"count": 2}
