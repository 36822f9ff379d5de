"""Restart-storm guard: sliding one-hour window, per-stamp idempotency, tolerant history parsing."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction
from tradesense_operator.domain.incident.storm import (
    RestartRecord,
    check_restart,
    parse_history,
    record_restart,
    restarted_deployment,
    serialise_history,
)

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _records(*minutes_ago: int) -> list[RestartRecord]:
    return [RestartRecord(at=NOW - timedelta(minutes=m), stamp=f"uid-{m}/restart") for m in minutes_ago]


@pytest.mark.parametrize(
    ("minutes_ago", "limit", "allowed"),
    [
        ((), 3, True),
        ((10, 20), 3, True),
        ((10, 20, 30), 3, False),
        ((10, 20, 60), 3, True),        # exactly one hour old: outside the window
        ((10, 20, 61, 90), 3, True),
        ((10,), 1, False),
        ((5, 6, 7, 8), 10, True),
    ],
)
def test_guard_counts_restarts_in_the_last_hour(minutes_ago: tuple[int, ...], limit: int, allowed: bool) -> None:
    verdict = check_restart(_records(*minutes_ago), stamp="new/restart", now=NOW, limit=limit)
    assert verdict.allowed is allowed


def test_blocked_verdict_says_when_the_next_restart_is_allowed() -> None:
    verdict = check_restart(_records(10, 20, 30), stamp="new/restart", now=NOW, limit=3)
    # the oldest of the three ages out 30 minutes from now
    assert verdict.next_allowed_at == NOW + timedelta(minutes=30)
    message = verdict.message("backend")
    assert "deployment/backend" in message
    assert "3 times" in message
    assert "limit 3" in message
    assert "2026-01-05T15:00:00Z" in message


def test_blocked_verdict_with_lowered_limit_waits_for_enough_records_to_age_out() -> None:
    verdict = check_restart(_records(10, 20, 30, 40), stamp="new/restart", now=NOW, limit=2)
    # three of four must age out to leave room for one more: the third oldest (20 min ago) leaves in 40 minutes
    assert verdict.next_allowed_at == NOW + timedelta(minutes=40)


def test_a_resumed_step_is_never_blocked_by_its_own_record() -> None:
    records = _records(10, 20, 30)
    verdict = check_restart(records, stamp="uid-10/restart", now=NOW, limit=3)
    assert verdict.allowed
    assert verdict.already_recorded


def test_recording_is_idempotent_per_stamp_and_prunes_old_records() -> None:
    records = _records(10, 70)
    once = record_restart(records, stamp="s/1", now=NOW)
    twice = record_restart(once, stamp="s/1", now=NOW + timedelta(seconds=5))
    assert [r.stamp for r in twice] == ["uid-10/restart", "s/1"]


def test_history_round_trips_through_the_annotation() -> None:
    records = _records(30, 10)
    assert parse_history(serialise_history(records)) == sorted(records, key=lambda r: r.at)


@pytest.mark.parametrize(
    "raw",
    [
        None, "", "not json", "{}", '[1, "x"]', '[{"at": "yesterday", "by": "x"}]',
        '[{"at": "2026-01-05T14:00:00", "by": "x"}]',   # naive time
        '[{"at": "2026-01-05T14:00:00Z"}]',             # no stamp
    ],
)
def test_malformed_history_is_ignored_not_fatal(raw: str | None) -> None:
    assert parse_history(raw) == []


def test_valid_entries_survive_next_to_malformed_ones() -> None:
    raw = '[{"at": "2026-01-05T14:00:00Z", "by": "a/b"}, {"at": 5, "by": "c"}]'
    assert parse_history(raw) == [RestartRecord(at=datetime(2026, 1, 5, 14, 0, tzinfo=UTC), stamp="a/b")]


@pytest.mark.parametrize(
    ("action", "target", "expected"),
    [
        (StepAction.ROLLOUT_RESTART, "deployment/backend", "backend"),
        (StepAction.DELETE_PODS, "deployment/postgres", "postgres"),
        (StepAction.ROLLOUT_RESTART, "backend", None),       # not the catalogue's target form
        (StepAction.DELETE_PODS, "pods/app=postgres", "postgres"),
        (StepAction.DELETE_PODS, "pods", None),             # every pod of the namespace: no single workload
        (StepAction.DELETE_PODS, "pods/app=", None),
        (StepAction.ROLLOUT_RESTART, "deployment/", None),
        (StepAction.SCALE, "deployment/backend", None),
    ],
)
def test_restarted_deployment_from_step_target(action: StepAction, target: str, expected: str | None) -> None:
    step = PlannedStep(id="s", action=action, target=target)
    assert restarted_deployment(step) == expected


def test_limit_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        check_restart([], stamp="x", now=NOW, limit=0)
