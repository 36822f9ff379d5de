"""CRD generation from the pydantic models.

Covers: crds/ drift (committed files equal what the models generate, and --check catches drift),
structural-schema rules Kubernetes enforces (no $ref/anyOf/title, a type on every node, descriptions on
every field for `kubectl explain`), defaults that satisfy their own schema, names, printer columns,
categories, subresources, the CEL rules, and the JSON Schema → structural conversion on small models.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field
from tests.support.crd_schema import CRD_DIR, load_crds, node_at, openapi_schema, schema_errors, walk

from tradesense_operator.api.crdgen import SchemaConversionError, build_crd, check_dir, render_files, to_structural
from tradesense_operator.api.crdgen.__main__ import main
from tradesense_operator.api.crdgen.files import HEADER, write_dir
from tradesense_operator.api.v1alpha1.kinds import INCIDENT, KINDS

FORBIDDEN_KEYWORDS = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "const", "examples", "discriminator"}


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {kind.kind: build_crd(kind) for kind in KINDS}


def _schema(crds: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    return openapi_schema(crds[kind])


# ---- drift ----------------------------------------------------------------------------------------

def test_committed_crds_match_the_models() -> None:
    assert check_dir(CRD_DIR) == [], "crds/ drifted from the models: run `make crds` and commit"


def test_committed_files_parse_to_the_generated_manifests(crds: dict[str, dict[str, Any]]) -> None:
    assert load_crds() == crds


def test_check_reports_a_changed_file_with_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dir(tmp_path)
    path = tmp_path / "ops.tradesense.io_scalingpolicies.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("name: Desired", "name: Wanted"), encoding="utf-8")

    assert main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "-      name: Wanted" in err
    assert "+      name: Desired" in err
    assert "make crds" in err


def test_check_reports_missing_and_foreign_files(tmp_path: Path) -> None:
    write_dir(tmp_path)
    (tmp_path / "ops.tradesense.io_backuppolicies.yaml").unlink()
    (tmp_path / "leftover.yaml").write_text("kind: Something\n", encoding="utf-8")

    problems = check_dir(tmp_path)

    assert any("ops.tradesense.io_backuppolicies.yaml: missing" in problem for problem in problems)
    assert any("leftover.yaml: not generated" in problem for problem in problems)


def test_out_then_check_passes_and_removes_stale_generated_files_only(tmp_path: Path) -> None:
    (tmp_path / "ops.tradesense.io_oldkinds.yaml").write_text(HEADER + "kind: CustomResourceDefinition\n", encoding="utf-8")
    (tmp_path / "hand-written.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")

    assert main(["--out", str(tmp_path)]) == 0

    assert not (tmp_path / "ops.tradesense.io_oldkinds.yaml").exists()
    assert (tmp_path / "hand-written.yaml").exists()  # not ours to delete
    (tmp_path / "hand-written.yaml").unlink()
    assert main(["--check", str(tmp_path)]) == 0


def test_rendering_is_deterministic() -> None:
    assert render_files() == render_files()


def test_generated_kustomization_lists_every_crd_file() -> None:
    files = render_files()
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["resources"] == sorted(name for name in files if name != "kustomization.yaml")
    assert len(kustomization["resources"]) == len(KINDS)


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_crd_fits_client_side_apply(crds: dict[str, dict[str, Any]], kind: str) -> None:
    """`kubectl apply` (client-side) stores the whole object in an annotation limited to 256 KiB."""
    assert len(json.dumps(crds[kind])) < 256 * 1024 // 2, "keep well below the limit; descriptions grow"


# ---- structural schema ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_schema_is_structural(crds: dict[str, dict[str, Any]], kind: str) -> None:
    problems = []
    for path, node in walk(_schema(crds, kind)):
        if forbidden := FORBIDDEN_KEYWORDS & set(node):
            problems.append(f"{path}: {sorted(forbidden)}")
        marker = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        if "type" not in node and not marker:
            problems.append(f"{path}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties together")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node and node[bound] is not True:
                problems.append(f"{path}: {bound} must be the OpenAPI v3.0 boolean")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{path}: array without items")
    assert problems == []


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_every_field_has_a_description_for_kubectl_explain(crds: dict[str, dict[str, Any]], kind: str) -> None:
    undocumented = [
        path for path, node in walk(_schema(crds, kind))
        if path != ".metadata" and not path.endswith("[*]") and not str(node.get("description", "")).strip()
    ]
    assert undocumented == []


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_root_has_only_kubernetes_owned_metadata(crds: dict[str, dict[str, Any]], kind: str) -> None:
    schema = _schema(crds, kind)
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    for name in ("spec", "status"):
        assert "nullable" not in schema["properties"][name]
        assert schema["properties"][name]["type"] == "object"


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_defaults_satisfy_their_own_schema(crds: dict[str, dict[str, Any]], kind: str) -> None:
    defaults = [(path, node) for path, node in walk(_schema(crds, kind)) if "default" in node]
    assert defaults, "the models declare defaults; the CRD must keep them"
    problems = [f"{path}: {schema_errors(node['default'], node)}" for path, node in defaults
                if schema_errors(node["default"], node)]
    assert problems == []
    assert all(node["default"] is not None for _, node in defaults)


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_list_map_keys_are_required_in_their_items(crds: dict[str, dict[str, Any]], kind: str) -> None:
    for path, node in walk(_schema(crds, kind)):
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], f"{path}: {key}"


def test_datetimes_enums_and_exclusive_bounds_survive(crds: dict[str, dict[str, Any]]) -> None:
    incident = _schema(crds, "TradeSenseIncident")
    assert node_at(incident, ".status.startedAt") == {
        "type": "string", "format": "date-time", "nullable": True, "description": "When execution began."}
    runbook = node_at(incident, ".spec.runbook")
    assert "site-down" in runbook["enum"]
    assert runbook["type"] == "string"
    assert node_at(incident, ".spec.severity")["default"] == "P3"
    target = node_at(_schema(crds, "ScalingPolicy"), ".spec.metrics[*].target.value")
    assert target["minimum"] == 0
    assert target["exclusiveMinimum"] is True
    assert target["type"] == "number"


def test_mixed_scalar_params_keep_any_value(crds: dict[str, dict[str, Any]]) -> None:
    params = node_at(_schema(crds, "TradeSenseIncident"), ".spec.steps[*].params")
    assert params["type"] == "object"
    assert params["additionalProperties"] == {"x-kubernetes-preserve-unknown-fields": True}


# ---- names, columns, subresources ---------------------------------------------------------------------

EXPECTED_COLUMNS = {
    "TradeSenseIncident": ["Severity", "Runbook", "Phase", "Step", "Age"],
    "BackupPolicy": ["Schedule", "Last Success", "Size", "Ready", "Age"],
    "ScalingPolicy": ["Target", "Min", "Max", "Current", "Desired", "Age"],
}
EXPECTED_SHORT_NAMES = {"TradeSenseIncident": ["tsi"], "BackupPolicy": ["bp"], "ScalingPolicy": ["sp"]}


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_names_category_scope_and_version(crds: dict[str, dict[str, Any]], kind: str) -> None:
    spec = crds[kind]["spec"]
    assert spec["group"] == "ops.tradesense.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["tradesense"]
    assert spec["names"]["shortNames"] == EXPECTED_SHORT_NAMES[kind]
    assert crds[kind]["metadata"]["name"] == f"{spec['names']['plural']}.ops.tradesense.io"
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_status_subresource_and_no_scale_subresource(crds: dict[str, dict[str, Any]], kind: str) -> None:
    (version,) = crds[kind]["spec"]["versions"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_printer_columns_point_at_existing_fields(crds: dict[str, dict[str, Any]], kind: str) -> None:
    (version,) = crds[kind]["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    assert [column["name"] for column in columns] == EXPECTED_COLUMNS[kind]
    schema = version["schema"]["openAPIV3Schema"]
    for column in columns:
        path = column["jsonPath"].split("[?")[0]  # conditions[?(@.type=="Ready")].status → .status.conditions
        if path.startswith(".metadata"):
            continue
        node = node_at(schema, path)
        expected = {"integer": "integer", "date": "string", "string": "string"}[column["type"]]
        assert node["type"] == ("array" if "[?" in column["jsonPath"] else expected), column["name"]
        assert column["description"]


def test_ready_column_reads_the_ready_condition(crds: dict[str, dict[str, Any]]) -> None:
    (version,) = crds["BackupPolicy"]["spec"]["versions"]
    ready = next(column for column in version["additionalPrinterColumns"] if column["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


# ---- CEL rules ------------------------------------------------------------------------------------

def _rules(schema: dict[str, Any], path: str) -> list[str]:
    return [rule["rule"] for rule in node_at(schema, path).get("x-kubernetes-validations", [])]


def test_cross_field_cel_rules_are_where_they_apply(crds: dict[str, dict[str, Any]]) -> None:
    scaling = _schema(crds, "ScalingPolicy")
    assert _rules(scaling, ".spec")[:2] == [
        "self.minReplicas <= self.maxReplicas",
        "!has(self.fallback) || (self.fallback.replicas >= self.minReplicas && self.fallback.replicas <= self.maxReplicas)",
    ]
    assert _rules(scaling, ".spec.metrics[*]") == ["has(self.preset) != has(self.query)"]
    assert _rules(scaling, ".spec.workers") == ["self.min <= self.max"]
    backup = _schema(crds, "BackupPolicy")
    assert _rules(backup, ".spec.storage") == ["has(self.filesystem) != has(self.s3)"]
    assert _rules(backup, ".spec.database") == ["!(has(self.host) && has(self.serviceName))"]
    incident = _schema(crds, "TradeSenseIncident")
    assert _rules(incident, ".spec.target.database") == ["!(has(self.host) && has(self.serviceName))"]
    assert _rules(incident, ".spec.target.redisConnection") == ["!(has(self.host) && has(self.serviceName))"]
    assert "(self.runbook == 'custom') == (has(self.steps) && size(self.steps) > 0)" in _rules(incident, ".spec")


def test_incident_spec_is_immutable_except_approvals_and_cancel(crds: dict[str, dict[str, Any]]) -> None:
    spec = node_at(_schema(crds, "TradeSenseIncident"), ".spec")
    transition = [rule for rule in spec["x-kubernetes-validations"] if "oldSelf" in rule["rule"]]
    guarded = {rule["fieldPath"].lstrip(".") for rule in transition}
    assert guarded == set(spec["properties"]) - {"approvals", "cancel"}
    runbook = next(rule for rule in transition if rule["fieldPath"] == ".runbook")
    assert runbook["rule"] == (
        "has(self.runbook) == has(oldSelf.runbook) && (!has(self.runbook) || self.runbook == oldSelf.runbook)"
    )
    assert "immutable" in runbook["message"]


def test_policies_have_no_transition_rules(crds: dict[str, dict[str, Any]]) -> None:
    for kind in ("BackupPolicy", "ScalingPolicy"):
        for _, node in walk(_schema(crds, kind)):
            assert all("oldSelf" not in rule["rule"] for rule in node.get("x-kubernetes-validations", []))


def test_every_cel_rule_has_a_message(crds: dict[str, dict[str, Any]]) -> None:
    for kind in crds:
        for path, node in walk(_schema(crds, kind)):
            for rule in node.get("x-kubernetes-validations", []):
                assert rule.get("message"), f"{kind}{path}: {rule['rule']}"


def test_mutable_fields_must_exist_in_the_spec() -> None:
    broken = dataclasses.replace(INCIDENT, mutable_spec_fields=frozenset({"approvals", "nonsense"}))
    with pytest.raises(SchemaConversionError, match="nonsense"):
        build_crd(broken)


# ---- conversion on small models -----------------------------------------------------------------------

class Colour(enum.StrEnum):
    """A colour."""

    RED = "red"
    BLUE = "blue"


class Leaf(BaseModel):
    """A leaf."""

    size: int = Field(default=1, gt=0, description="Size.")


class Sample(BaseModel):
    """A sample."""

    colour: Colour = Field(default=Colour.RED, description="Colour.")
    leaf: Leaf | None = Field(default=None, description="Optional leaf.")
    when: datetime = Field(description="When.")
    mode: Literal["on"] = Field(default="on", description="Always on.")
    port: int | str = Field(default=80, description="Port number or name.")
    anything: dict[str, Any] = Field(default_factory=dict, description="Free-form.")
    labels: dict[str, str] = Field(default_factory=dict, description="String map.")
    mixed: str | float | bool = Field(default="x", description="Mixed scalar.")


def test_conversion_of_the_pydantic_constructs_we_rely_on() -> None:
    schema = to_structural(Sample.model_json_schema(by_alias=True, mode="validation"))
    props = schema["properties"]
    # A field's own description comes first, its type's docstring second (both show in `kubectl explain`).
    assert props["colour"] == {"type": "string", "enum": ["red", "blue"], "default": "red",
                               "description": "Colour.\n\nA colour."}
    assert props["leaf"] == {
        "type": "object", "nullable": True, "description": "Optional leaf.\n\nA leaf.",
        "properties": {"size": {"type": "integer", "default": 1, "minimum": 0, "exclusiveMinimum": True,
                                "description": "Size."}},
    }
    assert props["when"] == {"type": "string", "format": "date-time", "description": "When."}
    assert props["mode"] == {"type": "string", "enum": ["on"], "default": "on", "description": "Always on."}
    assert props["port"] == {"x-kubernetes-int-or-string": True, "default": 80, "description": "Port number or name."}
    assert props["anything"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "description": "Free-form."}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}, "description": "String map."}
    assert props["mixed"] == {"x-kubernetes-preserve-unknown-fields": True, "default": "x", "description": "Mixed scalar."}
    assert schema["required"] == ["when"]
    assert "title" not in schema


class Node(BaseModel):
    """A recursive model cannot be inlined."""

    children: list[Node] = Field(default_factory=list, description="Children.")


def test_recursive_models_are_rejected_with_the_path() -> None:
    with pytest.raises(SchemaConversionError, match="recursive model Node"):
        to_structural(Node.model_json_schema())


class Pair(BaseModel):
    """A union of objects has no structural equivalent."""

    either: Leaf | Sample = Field(description="Either.")


def test_unions_of_objects_are_rejected_with_the_path() -> None:
    with pytest.raises(SchemaConversionError, match=r"\.either: only unions of scalars"):
        to_structural(Pair.model_json_schema())


class Described(BaseModel):
    """A leaf."""

    same: Leaf = Field(description="Holds a leaf. A leaf.")
    bare: Leaf


def test_type_docstring_is_not_repeated_and_fills_in_for_a_missing_field_description() -> None:
    props = to_structural(Described.model_json_schema())["properties"]
    assert props["same"]["description"] == "Holds a leaf. A leaf."
    assert props["bare"]["description"] == "A leaf."


def test_multi_line_descriptions_are_written_as_blocks() -> None:
    text = render_files()["ops.tradesense.io_backuppolicies.yaml"]
    assert "description: |-\n" in text
    assert "\\n" not in text


class Verbose(BaseModel):
    """A leaf with more to say."""

    inner: Leaf = Field(description="A leaf")


def test_a_field_description_contained_in_its_type_docstring_is_not_repeated() -> None:
    assert to_structural(Verbose.model_json_schema())["properties"]["inner"]["description"] == "A leaf."
