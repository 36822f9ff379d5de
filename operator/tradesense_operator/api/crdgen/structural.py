"""Turn pydantic's JSON Schema (draft 2020-12) into a Kubernetes structural OpenAPI v3 schema.

Kubernetes accepts only a subset (see "Specifying a structural schema" in the CRD docs): every node
has a `type` (or a preserve-unknown/int-or-string marker), no `$ref`, no `anyOf`/`oneOf` that could
change the shape, no `title`, OpenAPI v3.0's boolean `exclusiveMinimum`. The conversion is generic
over the models, so a model change never needs a change here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Schema = dict[str, Any]

# JSON Schema keywords Kubernetes' OpenAPI v3 subset understands and keeps as they are.
_PASSTHROUGH = (
    "description", "type", "format", "enum", "default", "pattern",
    "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
    "minimum", "maximum", "multipleOf", "nullable", "required",
)
# Formats the apiserver validates; others are dropped rather than silently ignored in-cluster.
_KNOWN_FORMATS = frozenset({
    "date-time", "date", "duration", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac",
    "uuid", "byte", "password", "int32", "int64", "float", "double",
})


class SchemaConversionError(ValueError):
    """The model uses a JSON Schema construct with no structural equivalent."""


def to_structural(schema: Mapping[str, Any]) -> Schema:
    """Convert a whole `model_json_schema()` document (with `$defs`) into one inlined structural schema."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    root = {key: value for key, value in schema.items() if key != "$defs"}
    return _convert(root, defs, path="", seen=())


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str, seen: tuple[str, ...]) -> Schema:
    node, seen = _inline(node, defs, path, seen)
    node, nullable = _strip_null(node)
    node, seen = _inline(node, defs, path, seen)
    out: Schema = {}
    if "anyOf" in node or "oneOf" in node:
        out.update(_scalar_union(node, path))
    for key in _PASSTHROUGH:
        if key in node:
            out[key] = copy.deepcopy(node[key])
    if "const" in node:
        out["enum"] = [node["const"]]
    if isinstance(out.get("type"), list):
        raise SchemaConversionError(f"{path or '<root>'}: multiple types {out['type']} are not structural")
    if "format" in out and out["format"] not in _KNOWN_FORMATS:
        del out["format"]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            out[inclusive] = node[bound]
            out[bound] = True
    if nullable:
        out["nullable"] = True
    if out.get("default", ...) is None:
        del out["default"]  # null defaults mean "absent"; the apiserver would store an explicit null
    out.update({key: copy.deepcopy(value) for key, value in node.items() if key.startswith("x-kubernetes-")})
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {
            name: _convert(sub, defs, f"{path}.{name}", seen) for name, sub in node["properties"].items()
        }
    elif out.get("type") == "object":
        extra = node.get("additionalProperties", True)
        if extra is True or extra == {}:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, Mapping):
            out["additionalProperties"] = _convert(extra, defs, f"{path}[*]", seen)
    if "items" in node:
        out["items"] = _convert(node["items"], defs, f"{path}[*]", seen)
    if out.get("type") == "array" and "items" not in out:
        raise SchemaConversionError(f"{path or '<root>'}: an array needs an item schema")
    if "type" not in out and not (
        out.get("x-kubernetes-preserve-unknown-fields") or out.get("x-kubernetes-int-or-string")
    ):
        raise SchemaConversionError(f"{path or '<root>'}: no type (keys {sorted(node)})")
    return out


def _inline(
    node: Mapping[str, Any], defs: Mapping[str, Any], path: str, seen: tuple[str, ...]
) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """Replace `$ref` (and a one-element `allOf`) by the referenced schema, the node's own keys winning.

    `seen` is the chain of models inlined above this node; meeting one again means a recursive model,
    which a structural schema (a finite tree) cannot express.
    """
    if "allOf" in node:
        if len(node["allOf"]) != 1:
            raise SchemaConversionError(f"{path or '<root>'}: allOf with several schemas is not structural")
        siblings = {key: value for key, value in node.items() if key != "allOf"}
        node = {**node["allOf"][0], **siblings}
    if "$ref" not in node:
        return node, seen
    name = str(node["$ref"]).rsplit("/", 1)[-1]
    if name in seen:
        raise SchemaConversionError(f"{path or '<root>'}: recursive model {name} cannot be inlined")
    target, seen = _inline(defs[name], defs, path, (*seen, name))
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    merged = {**target, **siblings}
    own, shared = str(siblings.get("description", "")).strip(), str(target.get("description", "")).strip()
    if own and shared and own in shared:
        merged["description"] = shared  # the type's docstring already says it, and more
    elif own and shared and shared not in own:
        # `kubectl explain` shows one text per field: what this field is for, then what its type is.
        merged["description"] = f"{own}\n\n{shared}"
    rules = [*target.get("x-kubernetes-validations", []), *siblings.get("x-kubernetes-validations", [])]
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged, seen


def _strip_null(node: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """`anyOf: [X, {type: null}]` → X (keeping the outer keys) and nullable=True."""
    for keyword in ("anyOf", "oneOf"):
        variants = node.get(keyword)
        if variants is None:
            continue
        non_null = [variant for variant in variants if variant.get("type") != "null"]
        if len(non_null) == len(variants):
            return node, False
        siblings = {key: value for key, value in node.items() if key != keyword}
        if len(non_null) == 1:
            return {**non_null[0], **siblings}, True
        return {**siblings, keyword: non_null}, True
    return node, False


def _scalar_union(node: Mapping[str, Any], path: str) -> Schema:
    """A union of scalar types: int|str is int-or-string; anything else keeps any JSON value."""
    variants = node.get("anyOf") or node.get("oneOf") or []
    types = {variant.get("type") for variant in variants}
    if None in types or not types <= {"string", "integer", "number", "boolean"}:
        raise SchemaConversionError(f"{path or '<root>'}: only unions of scalars can be expressed, got {variants}")
    if types == {"string", "integer"}:
        return {"x-kubernetes-int-or-string": True}
    # Structural schemas cannot say "string or number or boolean"; the models still enforce it.
    return {"x-kubernetes-preserve-unknown-fields": True}
