"""Label and field selectors with the API server's syntax and matching rules.

Label selectors support `=`, `==`, `!=`, `in (…)`, `notin (…)`, `key` (exists) and `!key`;
field selectors support `=`, `==`, `!=` on `metadata.name`, `metadata.namespace` and a few
kind-specific fields kubectl and controllers use. A malformed selector is a 400, as on a real server.

Pure parsing and matching; must not read the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi.errors import ApiError, bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, as the API server does.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside a `( … )` value set."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_key(key: str, selector: str) -> str:
    if not _KEY_RE.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in selector {selector!r}")
    return key


def _check_value(value: str, selector: str) -> str:
    if not _VALUE_RE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in selector {selector!r}")
    return value


_SET_RE = re.compile(r"^\s*(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)\s*$")


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse a label selector string; an empty or missing selector matches everything."""
    if not selector or not selector.strip():
        return []
    requirements: list[Requirement] = []
    for raw in _split_top_level(selector):
        clause = raw.strip()
        if not clause:
            raise bad_request(f"unable to parse requirement: empty clause in selector {selector!r}")
        if match := _SET_RE.match(clause):
            values = frozenset(_check_value(v.strip(), selector) for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(_check_key(match["key"], selector), match["op"], values))
        elif match := _EQ_RE.match(clause):
            operator = "!=" if match["op"] == "!=" else "="
            value = _check_value(match["value"], selector)
            requirements.append(Requirement(_check_key(match["key"], selector), operator, frozenset({value})))
        elif clause.startswith("!"):
            requirements.append(Requirement(_check_key(clause[1:].strip(), selector), "!", frozenset()))
        else:
            requirements.append(Requirement(_check_key(clause, selector), "exists", frozenset()))
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    present = labels or {}
    return all(requirement.matches(present) for requirement in requirements)


def selector_from_label_selector(spec: Mapping[str, Any] | None) -> str:
    """Render a `metav1.LabelSelector` (matchLabels/matchExpressions) as selector text."""
    if not spec:
        return ""
    clauses = [f"{key}={value}" for key, value in sorted((spec.get("matchLabels") or {}).items())]
    for expression in spec.get("matchExpressions") or []:
        operator = str(expression.get("operator", ""))
        key = str(expression["key"])
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        if operator == "In":
            clauses.append(f"{key} in ({values})")
        elif operator == "NotIn":
            clauses.append(f"{key} notin ({values})")
        elif operator == "Exists":
            clauses.append(key)
        elif operator == "DoesNotExist":
            clauses.append(f"!{key}")
    return ",".join(clauses)


FieldGetter = Callable[[Mapping[str, Any]], str | None]


def _path_getter(path: str) -> FieldGetter:
    parts = path.split(".")

    def getter(obj: Mapping[str, Any]) -> str | None:
        current: Any = obj
        for part in parts:
            if not isinstance(current, Mapping):
                return None
            current = current.get(part)
        if current is None:
            return ""
        return str(current).lower() if isinstance(current, bool) else str(current)

    return getter


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName"),
    "Event": (
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "source",
        "type",
        "reportingComponent",
    ),
    "Secret": ("type",),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    getter: FieldGetter
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (self.getter(obj) == self.value) == self.equal


def parse_field_selector(selector: str | None, kind: str) -> list[FieldRequirement]:
    """Parse a field selector; only the fields the API server supports for the kind are accepted."""
    if not selector or not selector.strip():
        return []
    allowed = set(_COMMON_FIELDS) | set(_KIND_FIELDS.get(kind, ()))
    requirements: list[FieldRequirement] = []
    for raw in selector.split(","):
        clause = raw.strip()
        match = re.match(r"^(?P<path>[^=!]+)(?P<op>==|=|!=)(?P<value>.*)$", clause)
        if match is None:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{clause}'")
        path = match["path"].strip()
        if path not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {path}")
        requirements.append(FieldRequirement(path, _path_getter(path), match["op"] != "!=", match["value"].strip()))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
