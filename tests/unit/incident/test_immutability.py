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


def test_a_default_applied_on_read_is_not_an_edit() -> None:
    """A CRD upgrade adds a defaulted field: the API server serves old objects with it (defaulting on read)."""
    frozen = spec_fingerprint(SPEC)
    as_read_after_the_upgrade = {**SPEC, "cancelOnAlertResolved": False, "dryRun": False}
    assert changed_fields(frozen, spec_fingerprint(as_read_after_the_upgrade)) == []
    set_by_hand = {**SPEC, "cancelOnAlertResolved": True}
    assert changed_fields(frozen, spec_fingerprint(set_by_hand)) == ["spec.cancelOnAlertResolved"]


def test_a_field_an_older_operator_did_not_know_counts_only_when_it_is_not_its_default() -> None:
    older = {k: v for k, v in spec_fingerprint(SPEC).items() if k != "cancelOnAlertResolved"}
    assert changed_fields(older, spec_fingerprint(SPEC)) == []
    assert changed_fields(older, spec_fingerprint({**SPEC, "cancelOnAlertResolved": True})) == [
        "spec.cancelOnAlertResolved"]
