"""Validation of custom objects against a CRD's structural openAPIV3Schema, as the API server does it.

Order follows the API server: prune unknown fields (unless `x-kubernetes-preserve-unknown-fields`)
and nulls of non-nullable fields, apply defaults, validate the schema (jsonschema on a converted
schema: `nullable`, `x-kubernetes-int-or-string`, OpenAPI 3.0 boolean exclusive bounds), then run
the `x-kubernetes-validations` CEL rules. Failures become one 422 with Kubernetes-worded causes
(`spec.maxReplicas: Invalid value: 0: spec.maxReplicas in body should be greater than or equal to 1`).

Returns the admitted object or raises; must not write the store.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from tradesense_sandbox.kubeapi.cel import CelCompileError, CelEvalError, Program, compile_rule
from tradesense_sandbox.kubeapi.errors import ApiError, invalid

_ROOT_KEEP = ("apiVersion", "kind", "metadata")
_MISSING = object()


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """Convert one structural-schema node to JSON Schema draft 7."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key == "additionalProperties":
            out[key] = to_json_schema(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "not":
            out[key] = to_json_schema(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if value and bound in node:
                out[key] = node[bound]
        elif key.startswith("x-kubernetes-") or key in (
            "nullable",
            "description",
            "example",
            "externalDocs",
            "default",
            "format",
            "title",
        ):
            continue
        else:
            out[key] = value
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        bound = "minimum" if key == "exclusiveMinimum" else "maximum"
        if node.get(key) is True and bound in out:
            del out[bound]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True  # the API server refuses a set with a repeated item ("Duplicate value")
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _prune(value: Any, schema: dict[str, Any], *, root: bool = False) -> Any:
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema or root):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        properties: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, item in value.items():
            if root and key in _ROOT_KEEP:
                result[key] = item
            elif key in properties:
                sub = properties[key]
                if item is None and not sub.get("nullable"):
                    continue
                result[key] = _prune(item, sub)
            elif isinstance(additional, dict):
                result[key] = _prune(item, additional)
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(item, schema["items"]) for item in value]
    return value


def _default(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _default(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    value[key] = _default(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default(item, schema["items"]) for item in value]
    return value


def _lacks_default(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `_default` would add anything to `value` (it is read-only here)."""
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties") or {}
        for key, sub in properties.items():
            if key not in value:
                if "default" in sub:
                    return True
            elif _lacks_default(value[key], sub):
                return True
        additional = schema.get("additionalProperties")
        return isinstance(additional, dict) and any(
            _lacks_default(item, additional) for key, item in value.items() if key not in properties
        )
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return any(_lacks_default(item, schema["items"]) for item in value)
    return False


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _cause(error: jsonschema.ValidationError) -> tuple[str, str, str]:
    """Reword a jsonschema error the way the API server words the same schema failure."""
    field = _path(error.absolute_path)
    value, kind, bound = error.instance, error.validator, error.validator_value
    shown = _render(value)
    if kind == "required":
        missing = [name for name in bound if isinstance(value, dict) and name not in value]
        name = missing[0] if missing else "?"
        return ("FieldValueRequired", f"{field}.{name}" if field else name, "Required value")
    if kind == "type":
        expected = bound[0] if isinstance(bound, list) else bound
        return (
            "FieldValueTypeInvalid",
            field,
            f"Invalid value: {shown}: {field} in body must be of type {expected}: {shown}",
        )
    if kind == "enum":
        supported = ", ".join(json.dumps(v) for v in bound if v is not None)
        return ("FieldValueNotSupported", field, f"Unsupported value: {shown}: supported values: {supported}")
    wording = {
        "minimum": f"should be greater than or equal to {bound}",
        "maximum": f"should be less than or equal to {bound}",
        "exclusiveMinimum": f"should be greater than {bound}",
        "exclusiveMaximum": f"should be less than {bound}",
        "pattern": f"should match '{bound}'",
        "minLength": f"should be at least {bound} chars long",
        "minItems": f"should have at least {bound} items",
        "minProperties": f"should have at least {bound} properties",
        "multipleOf": f"should be a multiple of {bound}",
        "uniqueItems": "shouldn't contain duplicates",
    }
    if kind == "uniqueItems" and isinstance(value, list):
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                return ("FieldValueDuplicate", f"{field}[{index}]", f"Duplicate value: {json.dumps(item)}")
            seen.append(item)
    if kind == "maxLength":
        return ("FieldValueTooLong", field, f"Too long: may not be longer than {bound}")
    if kind == "maxItems":
        return ("FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {bound} items")
    if kind in wording:
        return ("FieldValueInvalid", field, f"Invalid value: {shown}: {field} in body {wording[kind]}")
    return ("FieldValueInvalid", field, f"Invalid value: {shown}: {error.message}")


@dataclass(frozen=True)
class _RuleSite:
    """CEL rules attached to one schema node."""

    schema: dict[str, Any]
    programs: tuple[tuple[Program, dict[str, Any]], ...]


def _compile_rules(schema: dict[str, Any], where: str) -> dict[int, _RuleSite]:
    """Compile every rule in the schema tree, keyed by the id() of its schema node; fail loudly."""
    sites: dict[int, _RuleSite] = {}

    def walk(node: dict[str, Any], path: str) -> None:
        rules = node.get("x-kubernetes-validations") or []
        programs = []
        for rule in rules:
            try:
                programs.append((compile_rule(str(rule["rule"])), rule))
            except CelCompileError as exc:
                raise CelCompileError(f"{where}: x-kubernetes-validations at {path or '<root>'}: {exc}") from exc
        if programs:
            sites[id(node)] = _RuleSite(node, tuple(programs))
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{name}" if path else name)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[*]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}[*]")

    walk(schema, "")
    return sites


class SchemaValidator:
    """Admission for one CRD version: prune, default, validate, run CEL rules."""

    def __init__(self, kind: str, group: str, schema: dict[str, Any]) -> None:
        self.kind, self.group = kind, group
        self.schema = schema
        self.sites = _compile_rules(schema, f"{kind}.{group}")
        converted = to_json_schema(
            {k: v for k, v in schema.items() if k != "properties"}
            | {"properties": {k: v for k, v in (schema.get("properties") or {}).items() if k not in _ROOT_KEEP}}
        )
        converted.pop("required", None) if "metadata" in (schema.get("required") or []) else None
        jsonschema.Draft7Validator.check_schema(converted)
        self._validator = jsonschema.Draft7Validator(converted)
        # Per top-level field (spec, status, ...), so an update validates only the fields it changed, when the
        # root itself says no more than type/required/properties (always, for a structural schema).
        self._parts: dict[str, jsonschema.Draft7Validator] | None = None
        if set(converted) <= {"type", "required", "properties"}:
            self._root = jsonschema.Draft7Validator({k: v for k, v in converted.items() if k != "properties"})
            self._parts = {name: jsonschema.Draft7Validator(sub)
                           for name, sub in (converted.get("properties") or {}).items()}

    def _errors(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[jsonschema.ValidationError]:
        """Schema errors of `obj`. On update, a top-level field equal to the stored one is not validated again
        (it passed when written): the API server's validation ratcheting (beta, on by default since 1.30) lets
        an unchanged field through even when a newer schema would refuse it — and a status write no longer
        re-validates the whole spec."""
        if self._parts is None:
            return list(self._validator.iter_errors(obj))
        errors = list(self._root.iter_errors(obj))
        for name, validator in self._parts.items():
            if name not in obj or (old is not None and name in old and old[name] == obj[name]):
                continue
            for error in validator.iter_errors(obj[name]):
                error.path.appendleft(name)
                errors.append(error)
        return errors

    def admit(self, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        obj = _prune(obj, self.schema, root=True)
        obj = _default(obj, self.schema)
        name = str(obj.get("metadata", {}).get("name", ""))
        causes = [_cause(error) for error in sorted(self._errors(obj, old), key=lambda e: list(e.absolute_path))]
        if not causes:
            causes = self._cel(obj, old)
        if causes:
            raise invalid(self.kind, self.group, name, causes)
        return obj

    def lacks_defaults(self, obj: dict[str, Any]) -> bool:
        """Whether `with_defaults` would change `obj` (an object stored before a default existed); checked
        without copying, so reads copy only objects that need it."""
        return _lacks_default(obj, self.schema)

    def with_defaults(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Defaulting on read: an object stored before a default existed is served with it (modified in place)."""
        return dict(_default(obj, self.schema))

    def _cel(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
        causes: list[tuple[str, str, str]] = []

        def walk(value: Any, old_value: Any, node: dict[str, Any], path: str) -> None:
            site = self.sites.get(id(node))
            if site is not None:
                for program, rule in site.programs:
                    if program.transition and old_value is _MISSING:
                        continue
                    field = path + str(rule.get("fieldPath", ""))
                    try:
                        ok = program.evaluate(value, old_value) if program.transition else program.evaluate(value)
                    except CelEvalError as exc:
                        causes.append(
                            (
                                "FieldValueInvalid",
                                field,
                                f"Invalid value: {_render(value)}: {exc} evaluating rule: {program.rule}",
                            )
                        )
                        continue
                    if not ok:
                        message = str(rule.get("message") or f"failed rule: {program.rule}")
                        reason = str(rule.get("reason") or "FieldValueInvalid")
                        causes.append((reason, field, f"Invalid value: {_render(value)}: {message}"))
            if isinstance(value, dict):
                for name, sub in (node.get("properties") or {}).items():
                    if name in value and not (path == "" and name == "metadata"):
                        child_old = old_value.get(name, _MISSING) if isinstance(old_value, dict) else _MISSING
                        if path == "" and child_old == value[name]:
                            continue  # an unchanged top-level field passed its rules when written (ratcheting)
                        walk(value[name], child_old, sub, f"{path}.{name}" if path else name)
                additional = node.get("additionalProperties")
                if isinstance(additional, dict):
                    for name, item in value.items():
                        child_old = old_value.get(name, _MISSING) if isinstance(old_value, dict) else _MISSING
                        walk(item, child_old, additional, f"{path}[{name}]")
            elif isinstance(value, list) and isinstance(node.get("items"), dict):
                for index, item in enumerate(value):
                    walk(item, _MISSING, node["items"], f"{path}[{index}]")

        walk(obj, old if old is not None else _MISSING, self.schema, "")
        return causes


def validator_for_version(kind: str, group: str, version: dict[str, Any]) -> SchemaValidator | None:
    """Build the validator of one CRD version; a bad schema or unsupported rule is a 422 at install."""
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not schema:
        return None
    try:
        return SchemaValidator(kind, group, schema)
    except CelCompileError as exc:
        raise ApiError(
            422,
            "Invalid",
            f"CustomResourceDefinition for {kind}.{group} is invalid: x-kubernetes-validations: compilation failed: {exc}",
        ) from exc
    except jsonschema.SchemaError as exc:
        raise ApiError(
            422, "Invalid", f"CustomResourceDefinition for {kind}.{group} has an invalid schema: {exc.message}"
        ) from exc
