"""Assemble one CustomResourceDefinition from a kind's table entry and its pydantic models.

Pure: builds the document as data; must not read or write files (files.py does).
"""

from __future__ import annotations

from typing import Any

from tradesense_operator.api.crdgen.structural import Schema, SchemaConversionError, to_structural
from tradesense_operator.api.v1alpha1.kinds import CrdKind

# Words CEL reserves; a property named like this would need `__name__` escaping in every rule.
_CEL_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})

API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)
KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. In CamelCase."
)

LABELS = {"app.kubernetes.io/name": "tradesense-operator", "app.kubernetes.io/part-of": "tradesense"}


def openapi_schema(kind: CrdKind) -> Schema:
    """The version's `openAPIV3Schema`: the model's structural schema with Kubernetes' own root fields."""
    schema = to_structural(kind.model.model_json_schema(by_alias=True, mode="validation"))
    properties: dict[str, Schema] = schema["properties"]
    for name in ("spec", "status"):
        node = properties.get(name)
        if node is None:
            raise SchemaConversionError(f"{kind.kind}: the top-level model needs a {name} field")
        node.pop("nullable", None)  # an object's spec/status is absent or an object, never null
        node.pop("default", None)
    properties["apiVersion"] = {"type": "string", "description": API_VERSION_DESCRIPTION}
    properties["kind"] = {"type": "string", "description": KIND_DESCRIPTION}
    # The apiserver owns metadata's schema; a CRD may say no more than `type: object` here.
    properties["metadata"] = {"type": "object"}
    schema["description"] = kind.description
    schema["required"] = ["spec"] if "spec" in schema.get("required", []) else []
    if not schema["required"]:
        del schema["required"]
    if kind.mutable_spec_fields is not None:
        _add_immutability_rules(kind, properties["spec"])
    return schema


def _add_immutability_rules(kind: CrdKind, spec: Schema) -> None:
    """One transition rule per immutable spec field, on `spec` so absent→present counts as a change."""
    assert kind.mutable_spec_fields is not None
    unknown = kind.mutable_spec_fields - set(spec["properties"])
    if unknown:
        raise SchemaConversionError(f"{kind.kind}: mutable_spec_fields names unknown spec fields {sorted(unknown)}")
    rules: list[dict[str, str]] = []
    for name in spec["properties"]:
        if name in kind.mutable_spec_fields:
            continue
        if name in _CEL_RESERVED:
            raise SchemaConversionError(f"{kind.kind}: spec field {name!r} is a CEL reserved word")
        rules.append({
            "rule": f"has(self.{name}) == has(oldSelf.{name}) && (!has(self.{name}) || self.{name} == oldSelf.{name})",
            "message": f"spec.{name} is immutable once the {kind.kind} is created",
            "fieldPath": f".{name}",
        })
    spec["x-kubernetes-validations"] = [*spec.get("x-kubernetes-validations", []), *rules]


def build_crd(kind: CrdKind) -> dict[str, Any]:
    """The complete CustomResourceDefinition manifest for one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": dict(LABELS)},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [column.to_crd() for column in kind.printer_columns],
                }
            ],
        },
    }
