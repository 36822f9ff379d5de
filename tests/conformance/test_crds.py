"""CustomResourceDefinitions: registration, discovery, schema validation, defaults, CEL rules, subresources.

Covers: POSTing a CRD makes the kind appear in discovery (with short names, categories, subresources);
objects are validated against the openAPIV3Schema with Kubernetes-worded 422 messages naming the field
(type, minimum, enum, required); defaults are applied and unknown fields pruned; `nullable`,
`x-kubernetes-int-or-string` and `x-kubernetes-preserve-unknown-fields` are honoured; CEL rules —
cross-field (`self.min <= self.max`), exactly-one-of (`has(a) != has(b)`) and transition rules with
`oldSelf` (immutability on update only); the status and scale subresources of a custom resource; an
unsupported CEL rule is refused at CRD install time by the emulator (never silently accepted).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conformance.conftest import Api, eventually

GROUP = "conformance.tradesense.io"
BASE = f"/apis/{GROUP}/v1"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["target"],
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must be <= maxReplicas"},
                {"rule": "has(self.preset) != has(self.query)", "message": "exactly one of preset or query"},
                {"rule": "self.target == oldSelf.target", "message": "target is immutable"},
                {"rule": "!has(self.fallback) || self.fallback <= self.maxReplicas", "message": "fallback above max"},
            ],
            "properties": {
                "target": {"type": "string", "minLength": 1},
                "minReplicas": {"type": "integer", "minimum": 1, "default": 1},
                "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "fallback": {"type": "integer"},
                "comment": {"type": "string", "nullable": True},
                "mode": {"type": "string", "enum": ["auto", "manual"], "default": "auto"},
                "preset": {"type": "string"},
                "query": {"type": "string"},
                "threshold": {"x-kubernetes-int-or-string": True},
                "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "replicas": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            },
        },
        "status": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "phase": {"type": "string"}, "selector": {"type": "string"}},
        },
    },
}

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gauges.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "Gauge",
            "plural": "gauges",
            "singular": "gauge",
            "shortNames": ["gg"],
            "categories": ["conformance"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": SCHEMA},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
            }
        ],
    },
}


async def install_gauges(api: Api) -> str:
    """Register the test CRD (idempotent) and wait until its endpoint serves."""
    rsp = await api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert rsp.status in (201, 409), rsp.body

    async def served() -> bool:
        return (await api.get(f"{BASE}/gauges")).status == 200

    await eventually(served, timeout=30)
    return BASE


@pytest.fixture
async def gauges(api: Api) -> str:
    return await install_gauges(api)


def gauge(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gauge",
        "metadata": {"name": name},
        "spec": {"target": "web", "preset": "cpu", **spec},
    }


async def test_crd_appears_in_discovery(api: Api, gauges: str) -> None:
    groups = {g["name"]: g for g in (await api.ok("GET", "/apis"))["groups"]}
    assert groups[GROUP]["preferredVersion"]["version"] == "v1"
    resources = {r["name"]: r for r in (await api.ok("GET", gauges))["resources"]}
    assert resources["gauges"]["kind"] == "Gauge"
    assert resources["gauges"]["shortNames"] == ["gg"]
    assert resources["gauges"]["categories"] == ["conformance"]
    assert {"gauges/status", "gauges/scale"} <= set(resources)


async def test_defaults_are_applied_and_unknown_fields_pruned(api: Api, ns: str, gauges: str) -> None:
    body = gauge("defaults", unknownField="dropped", params={"free": {"form": True}}, threshold="80%")
    created = await api.ok("POST", f"{gauges}/namespaces/{ns}/gauges", body)
    spec = created["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["mode"]) == (1, 10, "auto")
    assert "unknownField" not in spec
    assert spec["params"] == {"free": {"form": True}}
    assert spec["threshold"] == "80%"


@pytest.mark.parametrize(
    "case",
    [
        ({"maxReplicas": 0}, "spec.maxReplicas", "should be greater than or equal to 1"),
        ({"maxReplicas": 101}, "spec.maxReplicas", "should be less than or equal to 100"),
        ({"maxReplicas": "ten"}, "spec.maxReplicas", "must be of type integer"),
        ({"mode": "sometimes"}, "spec.mode", 'Unsupported value: "sometimes"'),
        ({"target": None}, "spec.target", "Required value"),
        ({"threshold": 1.5}, "spec.threshold", ""),
        ({"tags": ["a", "b", "a"]}, "spec.tags[2]", 'Duplicate value: "a"'),  # x-kubernetes-list-type: set
    ],
)
async def test_schema_violations_are_422_naming_the_field(
    api: Api, ns: str, gauges: str, case: tuple[dict[str, Any], str, str]
) -> None:
    spec, field, fragment = case
    body = gauge("bad", **spec)
    if spec.get("target", "") is None:
        del body["spec"]["target"]
    rsp = await api.post(f"{gauges}/namespaces/{ns}/gauges", body)
    assert (rsp.status, rsp.reason) == (422, "Invalid")
    assert f"{field}: " in rsp.body["message"]
    assert fragment in rsp.body["message"]
    assert field in [cause.get("field") for cause in rsp.body["details"]["causes"]]


async def test_nullable_field_accepts_null(api: Api, ns: str, gauges: str) -> None:
    created = await api.ok("POST", f"{gauges}/namespaces/{ns}/gauges", gauge("nullable", comment=None))
    assert "comment" in created["spec"]
    assert created["spec"]["comment"] is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "minReplicas must be <= maxReplicas"),
        ({"query": "up"}, "exactly one of preset or query"),
        ({"fallback": 50, "maxReplicas": 10}, "fallback above max"),
    ],
)
async def test_cel_rules_reject_with_their_message(
    api: Api, ns: str, gauges: str, spec: dict[str, Any], message: str
) -> None:
    rsp = await api.post(f"{gauges}/namespaces/{ns}/gauges", gauge("cel", **spec))
    assert rsp.status == 422
    assert message in rsp.body["message"]
    assert rsp.body["message"].split(" is invalid: ", 1)[1].startswith("spec")


async def test_transition_rule_makes_a_field_immutable_on_update_only(api: Api, ns: str, gauges: str) -> None:
    path = f"{gauges}/namespaces/{ns}/gauges"
    await api.ok("POST", path, gauge("immutable"))
    allowed = await api.patch(f"{path}/immutable", {"spec": {"maxReplicas": 20}})
    assert allowed.status == 200
    refused = await api.patch(f"{path}/immutable", {"spec": {"target": "db"}})
    assert refused.status == 422
    assert "target is immutable" in refused.body["message"]


async def test_custom_status_and_scale_subresources(api: Api, ns: str, gauges: str) -> None:
    path = f"{gauges}/namespaces/{ns}/gauges"
    created = await api.ok("POST", path, {**gauge("scaled", replicas=2), "status": {"phase": "ignored-on-create"}})
    assert "status" not in created or created["status"].get("phase") != "ignored-on-create"
    status = await api.ok(
        "PATCH", f"{path}/scaled/status", {"status": {"replicas": 2, "phase": "Ready", "selector": "app=web"}}
    )
    assert status["metadata"]["generation"] == created["metadata"]["generation"]
    ignored = await api.ok("PATCH", f"{path}/scaled", {"status": {"phase": "changed-via-main"}})
    assert ignored["status"]["phase"] == "Ready"
    scale = await api.ok("GET", f"{path}/scaled/scale")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"], scale["status"]["selector"]) == (2, 2, "app=web")
    await api.ok("PATCH", f"{path}/scaled/scale", {"spec": {"replicas": 5}})
    assert (await api.ok("GET", f"{path}/scaled"))["spec"]["replicas"] == 5


async def test_strategic_merge_is_unsupported_for_custom_resources(api: Api, ns: str, gauges: str) -> None:
    path = f"{gauges}/namespaces/{ns}/gauges"
    await api.ok("POST", path, gauge("smp"))
    rsp = await api.patch(f"{path}/smp", {"spec": {"maxReplicas": 3}}, content_type="application/strategic-merge-patch+json")
    assert rsp.status == 415


async def test_a_crd_whose_cel_rule_does_not_compile_is_refused(api: Api) -> None:
    crd = copy.deepcopy(CRD)
    crd["metadata"]["name"] = f"oddities.{GROUP}"
    crd["spec"]["names"] = {"kind": "Oddity", "plural": "oddities", "singular": "oddity"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.target.shout() == self.target"}
    ]
    rsp = await api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert rsp.status == 422
    assert "undeclared reference" in rsp.body["message"]
    assert "shout" in rsp.body["message"]
    assert (await api.get(f"{BASE}/oddities")).status == 404
