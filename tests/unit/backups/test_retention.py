"""Retention selection: keepLast, maxAge, the newest verified and newest backups are never deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.domain.backups.durations import parse_duration
from tradesense_operator.domain.backups.retention import RetentionItem, select_deletions

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


def item(days_ago: int, verified: bool = True) -> RetentionItem:
    return RetentionItem(id=f"b{days_ago}", finished_at=NOW - timedelta(days=days_ago), verified=verified)


def ids(decisions: list) -> list[str]:  # type: ignore[type-arg]
    return [d.id for d in decisions]


@pytest.mark.parametrize(
    ("backups", "keep_last", "max_age", "deleted"),
    [
        # keep the newest 3 of 5
        ([item(d) for d in range(5)], 3, None, ["b4", "b3"]),
        # maxAge 2d: older than 2 days go
        ([item(d) for d in range(5)], None, "2d", ["b4", "b3"]),
        # both rules: either selects
        ([item(d) for d in range(6)], 4, "2d", ["b5", "b4", "b3"]),
        # newest verified is older than keepLast allows: kept anyway
        ([item(0, False), item(1, False), item(2, True), item(3, True)], 2, None, ["b3"]),
        # everything too old: the newest (and newest verified) survive
        ([item(10), item(11), item(12)], None, "1d", ["b12", "b11"]),
        # nothing configured: keep all
        ([item(d) for d in range(4)], None, None, []),
        # fewer than keepLast: keep all
        ([item(0), item(1)], 5, None, []),
        # empty
        ([], 3, "1d", []),
    ],
)
def test_select_deletions(backups: list[RetentionItem], keep_last: int | None, max_age: str | None,
                          deleted: list[str]) -> None:
    age = parse_duration(max_age, field="spec.retention.maxAge") if max_age else None
    assert ids(select_deletions(backups, now=NOW, keep_last=keep_last, max_age=age)) == deleted


def test_reason_names_the_rule() -> None:
    decisions = select_deletions([item(0), item(5)], now=NOW, keep_last=None, max_age=timedelta(days=1))
    assert decisions[0].reason == "older than maxAge (1d)"


@pytest.mark.parametrize("text", ["", "10", "3x", "0d", "d"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.retention\.maxAge"):
        parse_duration(text, field="spec.retention.maxAge")


def test_durations_compose() -> None:
    assert parse_duration("1h30m", field="f") == timedelta(minutes=90)
    assert parse_duration("2w", field="f") == timedelta(days=14)
