"""deploy/samples: one example per runbook and per policy shape, each valid for the models and the CRDs.

Covers: a sample for every Runbook enum value, BackupPolicy on filesystem and on S3, a ScalingPolicy
using presets, a raw query, a schedule and a fallback; every custom-resource sample passes the pydantic
model (which carries the CEL rules' cross-field checks) and the generated openAPIV3Schema; every Secret
a sample references is one the operator's Role may read; samples live where that Role applies; the
alert bridge's routing ConfigMap parses the way the bridge parses it and is readable under RBAC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from tests.support.crd_schema import load_crds, openapi_schema, schema_errors

from tradesense_operator.api.v1alpha1.incident import Runbook
from tradesense_operator.api.v1alpha1.kinds import KINDS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
MODELS: dict[str, type[BaseModel]] = {kind.kind: kind.model for kind in KINDS}
ALL_SAMPLES = sorted((DEPLOY / "samples").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


SAMPLES = [path for path in ALL_SAMPLES if _load(path)["kind"] in MODELS]  # our custom resources
ROUTES = DEPLOY / "samples" / "alert-routes.yaml"


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [document for document in map(_load, SAMPLES) if document["kind"] == kind]


def test_samples_exist() -> None:
    assert len(SAMPLES) >= len(Runbook) + 3
    assert set(ALL_SAMPLES) == {*SAMPLES, ROUTES}, "a sample of another kind needs its own validation here"


@pytest.mark.parametrize("runbook", list(Runbook), ids=str)
def test_one_incident_sample_per_runbook(runbook: Runbook) -> None:
    path = DEPLOY / "samples" / f"incident-{runbook.value}.yaml"
    assert path.exists(), f"add {path.relative_to(DEPLOY.parent)}"
    assert _load(path)["spec"]["runbook"] == runbook.value


def test_backup_policy_samples_cover_filesystem_and_s3() -> None:
    storages = {next(iter(document["spec"]["storage"])) for document in _by_kind("BackupPolicy")}
    assert storages == {"filesystem", "s3"}


def test_scaling_policy_sample_covers_presets_query_schedule_and_fallback() -> None:
    (policy,) = _by_kind("ScalingPolicy")
    spec = policy["spec"]
    assert any("preset" in metric for metric in spec["metrics"])
    assert any("query" in metric for metric in spec["metrics"])
    assert spec["schedules"]
    assert spec["fallback"]
    assert spec["behavior"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_is_valid_for_the_model(path: Path) -> None:
    document = _load(path)
    MODELS[document["kind"]].model_validate(document)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_is_valid_for_the_generated_crd_schema(path: Path) -> None:
    document = _load(path)
    crd = load_crds()[document["kind"]]
    assert document["apiVersion"] == f"{crd['spec']['group']}/v1alpha1"
    assert schema_errors(document, openapi_schema(crd)) == []


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_has_a_comment_and_lives_in_the_application_namespace(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith("# ")
    assert _load(path)["metadata"]["namespace"] == "tradesense"


def _secret_names(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("SecretRef"):
                yield value if isinstance(value, str) else value["name"]
            else:
                yield from _secret_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_names(item)


def test_every_secret_a_sample_references_is_readable_by_the_operator() -> None:
    role = yaml.safe_load((DEPLOY / "rbac" / "app_role.yaml").read_text(encoding="utf-8"))
    readable = {name for rule in role["rules"] if "secrets" in rule["resources"] and "get" in rule["verbs"]
                for name in rule["resourceNames"]}
    referenced = {name for path in SAMPLES for name in _secret_names(_load(path)["spec"])}
    referenced.add("tradesense-secrets")  # the incident's default signingSecret
    assert referenced <= readable, f"not readable under RBAC: {sorted(referenced - readable)}"


@pytest.mark.parametrize("path", [path for path in SAMPLES if path.name.startswith("incident-")], ids=lambda path: path.name)
def test_incident_sample_resolves_to_a_runbook_plan(path: Path) -> None:
    from tradesense_operator.api.v1alpha1.incident import TradeSenseIncident
    from tradesense_operator.domain.runbooks.catalogue import resolve_plan

    plan = resolve_plan(TradeSenseIncident.model_validate(_load(path)).spec)
    assert plan, "a sample that plans nothing demonstrates nothing"
    assert len({step.id for step in plan}) == len(plan)


def test_alert_routes_sample_parses_like_the_bridge_parses_it() -> None:
    from tradesense_operator.api.v1alpha1.incident import IncidentTarget
    from tradesense_operator.config import Settings
    from tradesense_operator.domain.alerts import parse_routes
    from tradesense_operator.services.alerts import TARGET_KEY

    configmap = _load(ROUTES)
    settings = Settings()
    assert (configmap["metadata"]["name"], configmap["metadata"]["namespace"]) == (
        settings.bridge_routes_configmap, settings.operator_namespace)
    data = dict(configmap["data"])
    target = IncidentTarget.model_validate(yaml.safe_load(data.pop(TARGET_KEY)))
    assert target.namespace == "tradesense"
    routes = parse_routes(data)
    assert routes["SiteDown"].runbook is Runbook.SITE_DOWN
    assert set(routes) == set(data)


def test_alert_routes_and_bridge_token_are_readable_by_name() -> None:
    from tradesense_operator.config import Settings

    role = yaml.safe_load((DEPLOY / "rbac" / "operator_role.yaml").read_text(encoding="utf-8"))
    readable = {(resource, name) for rule in role["rules"] if "get" in rule["verbs"]
                for resource in rule["resources"] for name in rule["resourceNames"]}
    settings = Settings()
    assert ("configmaps", settings.bridge_routes_configmap) in readable
    assert ("secrets", settings.bridge_token_secret) in readable
    assert settings.bridge_token_secret in ROUTES.read_text(encoding="utf-8"), "the sample says how to create it"
