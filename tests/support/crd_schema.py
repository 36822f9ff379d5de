"""Validate objects against a generated CRD's openAPIV3Schema with `jsonschema` (a plain helper, no fixtures).

An independent oracle for the CRD schemas: Kubernetes' OpenAPI v3.0 dialect (`nullable`, boolean
`exclusiveMinimum`, `x-kubernetes-*` markers) is translated to JSON Schema 2020-12. Unknown fields are
errors, as with kubectl's default strict field validation. CEL rules are not evaluated here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"


def load_crds(directory: Path = CRD_DIR) -> dict[str, dict[str, Any]]:
    """Kind → CRD manifest for every CustomResourceDefinition in `directory`."""
    crds = {}
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if document.get("kind") == "CustomResourceDefinition":
            crds[document["spec"]["names"]["kind"]] = document
    return crds


def openapi_schema(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The (only) version's openAPIV3Schema."""
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def to_jsonschema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one Kubernetes structural schema node (recursively) to JSON Schema 2020-12."""
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        return {}
    out: dict[str, Any] = {}
    for key in ("enum", "pattern", "minLength", "maxLength", "minItems", "maxItems",
                "minProperties", "maxProperties", "minimum", "maximum", "multipleOf", "required"):
        if key in node:
            out[key] = node[key]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
        if node.get("nullable") and "enum" in out:
            out["enum"] = [*out["enum"], None]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(bound) is True:
            out[bound] = out.pop(inclusive)
    if "properties" in node:
        out["properties"] = {name: to_jsonschema(sub) for name, sub in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    elif "additionalProperties" in node:
        out["additionalProperties"] = to_jsonschema(node["additionalProperties"])
    if "items" in node:
        out["items"] = to_jsonschema(node["items"])
    return out


def schema_errors(instance: object, schema: Mapping[str, Any]) -> list[str]:
    """`path: message` for every violation of the Kubernetes schema `schema` by `instance`."""
    validator = jsonschema.Draft202012Validator(to_jsonschema(schema))
    return sorted(
        f"{'.'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    )


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with a dotted path (`[*]` for items and map values)."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        sub = node.get(key)
        if isinstance(sub, Mapping):
            yield from walk(sub, f"{path}[*]")


def node_at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The schema node at a dotted path as produced by `walk` (e.g. `.spec.metrics[*]`)."""
    for found, node in walk(schema):
        if found == path:
            return node
    raise KeyError(path)
