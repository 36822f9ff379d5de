"""Spec fingerprints: only approvals and cancel may change after planning."""

from tradesense_operator.domain.incident.immutability import change_message, changed_fields, spec_fingerprint

SPEC = {
    "runbook": "high-cpu",
    "severity": "P2",
    "target": {"namespace": "tradesense", "backend": "backend"},
    "parameters": {"replicas": 8},
    "approvals": [],
    "cancel": False,
}


def test_approvals_and_cancel_may_change() -> None:
    frozen = spec_fingerprint(SPEC)
    edited = {**SPEC, "approvals": ["restart"], "cancel": True}
    assert changed_fields(frozen, spec_fingerprint(edited)) == []


def test_a_nested_change_names_its_top_level_field() -> None:
    frozen = spec_fingerprint(SPEC)
    edited = {**SPEC, "target": {"namespace": "other", "backend": "backend"}}
    assert changed_fields(frozen, spec_fingerprint(edited)) == ["spec.target"]


def test_added_and_removed_fields_count_as_changes() -> None:
    frozen = spec_fingerprint(SPEC)
    edited = {k: v for k, v in SPEC.items() if k != "parameters"} | {"dryRun": True}
    assert changed_fields(frozen, spec_fingerprint(edited)) == ["spec.dryRun", "spec.parameters"]


def test_key_order_does_not_matter() -> None:
    reordered = dict(reversed(list(SPEC.items())))
    reordered["target"] = {"backend": "backend", "namespace": "tradesense"}
    assert spec_fingerprint(reordered) == spec_fingerprint(SPEC)


def test_unplanned_incident_has_nothing_to_compare() -> None:
    assert changed_fields({}, spec_fingerprint(SPEC)) == []


def test_message_names_fields_and_the_way_out() -> None:
    message = change_message(["spec.target", "spec.runbook"])
    assert "spec.target, spec.runbook" in message
    assert "spec.approvals" in message
