"""The emulator evaluates CRD rules with a real CEL implementation and the API server's function set.

Covers: every rule shape listed by the CRD generator (cross-field comparisons, `has()` exactly-one-of,
`!has(x) || …` guards, `size()`, single-quoted strings, transition rules with `oldSelf` and deep
equality of objects/lists); CEL's error-absorbing `||`/`&&`; runtime errors (missing key, type
mismatch) surface as `CelEvalError`; cel-go's heterogeneous equality; Kubernetes' extension libraries
(strings, lists, sets, regex) work; syntax errors and undeclared functions or variables are refused at
compile time, as the API server refuses them when the CRD is created.
"""

from __future__ import annotations

from typing import Any

import pytest

from tradesense_sandbox.kubeapi.cel import CelCompileError, CelEvalError, compile_rule

SPEC = {"minReplicas": 2, "maxReplicas": 5, "fallback": {"replicas": 3}, "preset": "cpu"}
FALLBACK_IN_BOUNDS = (
    "!has(self.fallback) || (self.fallback.replicas >= self.minReplicas && self.fallback.replicas <= self.maxReplicas)"
)
STEPS_IFF_CUSTOM = "(self.runbook == 'custom') == (has(self.steps) && size(self.steps) > 0)"


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.minReplicas <= self.maxReplicas", SPEC, True),
        ("self.minReplicas <= self.maxReplicas", {**SPEC, "minReplicas": 9}, False),
        (FALLBACK_IN_BOUNDS, SPEC, True),
        (FALLBACK_IN_BOUNDS, {**SPEC, "fallback": {"replicas": 9}}, False),
        ("!has(self.fallback) || self.fallback.replicas >= 0", {"minReplicas": 1}, True),
        ("has(self.preset) != has(self.query)", {"preset": "cpu"}, True),
        ("has(self.preset) != has(self.query)", {"preset": "cpu", "query": "up"}, False),
        ("has(self.preset) != has(self.query)", {}, False),
        ("!(has(self.host) && has(self.serviceName))", {"host": "db"}, True),
        ("!(has(self.host) && has(self.serviceName))", {"host": "db", "serviceName": "pg"}, False),
        (
            STEPS_IFF_CUSTOM,
            {"runbook": "custom", "steps": [{"id": "a"}]},
            True,
        ),
        (
            STEPS_IFF_CUSTOM,
            {"runbook": "custom", "steps": []},
            False,
        ),
        (STEPS_IFF_CUSTOM, {"runbook": "db-failover"}, True),
        (
            STEPS_IFF_CUSTOM,
            {"runbook": "db-failover", "steps": [{"id": "a"}]},
            False,
        ),
        ("self.min <= self.max", {"min": 1, "max": 1}, True),
    ],
)
def test_crd_rule_shapes(rule: str, value: dict[str, Any], expected: bool) -> None:
    assert compile_rule(rule).evaluate(value) is expected


def test_transition_rule_compares_old_and_new_deeply() -> None:
    program = compile_rule("has(self.target) == has(oldSelf.target) && (!has(self.target) || self.target == oldSelf.target)")
    assert program.transition
    old = {"target": {"deployment": "web", "ports": [80, 443]}}
    assert program.evaluate({"target": {"deployment": "web", "ports": [80, 443]}}, old) is True
    assert program.evaluate({"target": {"deployment": "web", "ports": [443, 80]}}, old) is False
    assert program.evaluate({}, old) is False
    assert program.evaluate({}, {}) is True


def test_or_absorbs_an_error_when_the_other_side_is_true() -> None:
    assert compile_rule("self.missing > 1 || true").evaluate({}) is True
    assert compile_rule("false && self.missing > 1").evaluate({}) is False


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("self.missing <= 1", {}),
        ("self.a <= self.b", {"a": 1, "b": "two"}),
    ],
)
def test_runtime_errors_are_reported(rule: str, value: dict[str, Any]) -> None:
    with pytest.raises(CelEvalError):
        compile_rule(rule).evaluate(value)


def test_heterogeneous_equality_is_false_not_an_error() -> None:
    # cel-go (and so the API server) compares values of different types as unequal
    assert compile_rule("self.a == true").evaluate({"a": 1}) is False


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.name.lowerAscii() == 'web'", {"name": "WEB"}, True),
        ("self.items.map(x, x.id).size() == 2", {"items": [{"id": 1}, {"id": 2}]}, True),
        ("duration(self.timeout) > duration('1s')", {"timeout": "5s"}, True),
        ("self.image.find('v[0-9]+') == 'v2'", {"image": "backend:v2"}, True),
        ("sets.contains(self.all, self.some)", {"all": [1, 2, 3], "some": [2, 3]}, True),
        ("self.parts.join('-') == 'a-b'", {"parts": ["a", "b"]}, True),
    ],
)
def test_kubernetes_extension_libraries(rule: str, value: dict[str, Any], expected: bool) -> None:
    assert compile_rule(rule).evaluate(value) is expected


@pytest.mark.parametrize(
    "rule",
    [
        "self.name.shout() == self.name",
        "frobnicate(self.a)",
        "unknownVariable == 1",
        "self.a =",
    ],
)
def test_invalid_rules_are_refused_at_compile_time(rule: str) -> None:
    with pytest.raises(CelCompileError):
        compile_rule(rule)
