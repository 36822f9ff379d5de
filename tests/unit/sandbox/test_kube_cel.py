"""The emulator's CEL subset evaluates exactly the rule shapes the generated CRDs use, and refuses the rest.

Covers: every rule shape listed by the CRD generator (cross-field comparisons, `has()` exactly-one-of,
`!has(x) || …` guards, `size()`, single-quoted strings, transition rules with `oldSelf` and deep
equality of objects/lists); CEL's error-absorbing `||`/`&&`; runtime errors (missing key, type
mismatch) surface as `CelEvalError`; unknown functions/macros are refused at compile time.
"""

from __future__ import annotations

from typing import Any

import pytest

from tradesense_sandbox.kubeapi.cel import CelEvalError, CelUnsupported, compile_rule

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
        ("self.a == true", {"a": 1}),
    ],
)
def test_runtime_errors_are_reported(rule: str, value: dict[str, Any]) -> None:
    with pytest.raises(CelEvalError):
        compile_rule(rule).evaluate(value)


@pytest.mark.parametrize(
    "rule",
    [
        "self.name.lowerAscii() == self.name",
        "self.items.map(x, x.id).size() > 0",
        "duration(self.timeout) > duration('1s')",
        "self.a =",
    ],
)
def test_unsupported_rules_are_refused_at_compile_time(rule: str) -> None:
    with pytest.raises(CelUnsupported):
        compile_rule(rule)
