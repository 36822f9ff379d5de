"""The waiter queue on the namespace Lease: severity first, then age, then identity; stale entries drop out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradesense_operator.domain.incident.lock_queue import (
    WAITERS_ANNOTATION,
    Waiter,
    ahead_of,
    joined,
    left,
    live,
    parse_waiters,
    serialise_waiters,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = 60.0


def waiter(identity: str, severity: str, age_minutes: int, seen_seconds_ago: float = 0) -> Waiter:
    return Waiter(identity=identity, severity=severity, since=NOW - timedelta(minutes=age_minutes),
                  seen=NOW - timedelta(seconds=seen_seconds_ago))


def test_a_p1_goes_before_an_older_p4_and_the_older_of_two_p3s_first() -> None:
    line = [waiter("ns/low/1", "P4", 60), waiter("ns/new/2", "P3", 1), waiter("ns/old/3", "P3", 30),
            waiter("ns/urgent/4", "P1", 0)]
    assert [w.identity for w in live(line, now=NOW, ttl_seconds=TTL)] == [
        "ns/urgent/4", "ns/old/3", "ns/new/2", "ns/low/1"]


def test_only_a_live_waiter_that_ranks_first_keeps_a_free_lease_from_me() -> None:
    me = waiter("ns/me/1", "P3", 10)
    assert ahead_of(me, [waiter("ns/p4/2", "P4", 99)], now=NOW, ttl_seconds=TTL) is None
    assert ahead_of(me, [waiter("ns/p1/3", "P1", 0)], now=NOW, ttl_seconds=TTL) is not None
    # a P1 that stopped refreshing its entry (deleted, or no longer waiting) no longer counts
    assert ahead_of(me, [waiter("ns/p1/3", "P1", 0, seen_seconds_ago=TTL)], now=NOW, ttl_seconds=TTL) is None
    assert ahead_of(me, [me], now=NOW, ttl_seconds=TTL) is None


def test_the_annotation_round_trips_in_queue_order_and_joining_refreshes_an_entry() -> None:
    line = joined([waiter("ns/a/1", "P4", 5, seen_seconds_ago=30), waiter("ns/gone/9", "P1", 1, TTL + 1)],
                  waiter("ns/b/2", "P2", 1), now=NOW, ttl_seconds=TTL)
    assert [w.identity for w in line] == ["ns/a/1", "ns/b/2"]  # the stale entry was dropped
    value = serialise_waiters(line)
    assert list(parse_waiters({WAITERS_ANNOTATION: value})) == sorted(line, key=lambda w: w.rank)
    assert [w.identity for w in left(line, "ns/a/1")] == ["ns/b/2"]


def test_an_unreadable_annotation_is_an_empty_queue() -> None:
    assert parse_waiters({WAITERS_ANNOTATION: "not json"}) == []
    assert parse_waiters({WAITERS_ANNOTATION: '{"x": {"severity": "P1"}}'}) == []
    assert parse_waiters(None) == []
