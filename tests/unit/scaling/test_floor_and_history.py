"""Incident scale-floor annotation format (the contract with the incident scale action) and the bounded
histories: pruning must never change a stabilization or rate-limit answer, only bound the status size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesense_operator.api.v1alpha1.scaling import Behavior, Recommendation, ScaleEvent
from tradesense_operator.domain.scaling.behavior import resolve, scale_down_limit, scale_up_limit, stabilize
from tradesense_operator.domain.scaling.floor import (
    ScaleFloor,
    format_scale_floors,
    highest_active,
    merge_floor,
    parse_scale_floors,
)
from tradesense_operator.domain.scaling.history import prune_recommendations, prune_scale_events

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_floor_round_trips_through_the_annotation() -> None:
    floor = ScaleFloor(8, T0 + timedelta(minutes=30), "tradesense/high-cpu-x7")
    text = format_scale_floors([floor])
    assert text == '{"replicas":8,"until":"2026-01-05T15:30:00Z","incident":"tradesense/high-cpu-x7"}'
    assert parse_scale_floors(text) == [floor]


def test_offsets_are_accepted_and_normalised_to_utc() -> None:
    [floor] = parse_scale_floors('{"replicas": 3, "until": "2026-01-05T10:30:00-05:00", "incident": "a/b"}')
    assert floor.until == T0 + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ('{"replicas": -1, "until": "2026-01-05T15:30:00Z", "incident": "a/b"}', "replicas"),
        ('{"replicas": 2, "until": "2026-01-05T15:30:00", "incident": "a/b"}', "time zone"),
        ('{"replicas": 2, "until": "tomorrow", "incident": "a/b"}', "RFC 3339"),
        ('{"replicas": 2, "until": "2026-01-05T15:30:00Z", "incident": "nons"}', "incident"),
        ('{"replicas": 2, "until": "2026-01-05T15:30:00Z", "incident": "a/b", "x": 1}', "unknown keys"),
        ("[1]", r"\[0\]"),
    ],
)
def test_malformed_floors_are_rejected_with_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scale_floors(text)


def test_merge_replaces_the_same_incident_and_drops_expired_ones() -> None:
    old = format_scale_floors([ScaleFloor(5, T0 - timedelta(seconds=1), "ns/expired"),
                               ScaleFloor(6, T0 + timedelta(minutes=5), "ns/other"),
                               ScaleFloor(7, T0 + timedelta(minutes=5), "ns/me")])
    merged = parse_scale_floors(merge_floor(old, ScaleFloor(9, T0 + timedelta(minutes=10), "ns/me"), T0))
    assert {(f.incident, f.replicas) for f in merged} == {("ns/other", 6), ("ns/me", 9)}
    assert highest_active(merged, T0) == ScaleFloor(9, T0 + timedelta(minutes=10), "ns/me")
    assert highest_active(merged, T0 + timedelta(minutes=10)) is None


def test_merge_over_garbage_starts_afresh() -> None:
    new = ScaleFloor(4, T0 + timedelta(minutes=1), "ns/x")
    assert parse_scale_floors(merge_floor("garbage", new, T0)) == [new]


history_entries = st.lists(st.tuples(st.integers(0, 900), st.integers(0, 30)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(entries=history_entries, proposal=st.integers(0, 30), current=st.integers(0, 30),
       up=st.integers(0, 600), down=st.integers(0, 600), later=st.integers(0, 600))
def test_pruned_recommendations_stabilize_exactly_like_the_full_history(  # noqa: PLR0917
    entries: list[tuple[int, int]], proposal: int, current: int, up: int, down: int, later: int
) -> None:
    now = T0 + timedelta(seconds=900)
    full = [Recommendation(timestamp=T0 + timedelta(seconds=s), replicas=r) for s, r in sorted(entries)]
    behavior = resolve(Behavior.model_validate({"scaleUp": {"stabilizationWindowSeconds": up},
                                                "scaleDown": {"stabilizationWindowSeconds": down}}))
    pruned = prune_recommendations(full, behavior.longest_window, now)
    future = now + timedelta(seconds=later)   # still exact at any later evaluation time
    assert stabilize(proposal, current, pruned, behavior, future) == stabilize(proposal, current, full, behavior, future)


def test_recommendations_stay_bounded_at_one_second_polling() -> None:
    history = [Recommendation(timestamp=T0 + timedelta(seconds=s), replicas=3 + s % 2) for s in range(3600)]
    pruned = prune_recommendations(history, 3600, T0 + timedelta(seconds=3600))
    assert len(pruned) <= 4


PODS_PER_HALF_HOUR = {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1800}]}


@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.integers(1, 300), min_size=1, max_size=60), sizes=st.data(),
       cap=st.integers(2, 10), up=st.booleans())
def test_capped_scale_events_only_make_rate_limits_stricter(
    gaps: list[int], sizes: st.DataObject, cap: int, up: bool
) -> None:
    events, replicas, t = [], 500, T0
    for gap in gaps:
        t += timedelta(seconds=gap)
        delta = sizes.draw(st.integers(1, 5)) * (1 if up else -1)
        events.append(ScaleEvent(timestamp=t, from_replicas=replicas, to_replicas=replicas + delta))
        replicas += delta
    rules = resolve(Behavior.model_validate({"scaleUp": PODS_PER_HALF_HOUR, "scaleDown": PODS_PER_HALF_HOUR}))
    capped = prune_scale_events(events, 1800, t, cap=cap)
    assert len(capped) <= cap
    if up:
        assert scale_up_limit(replicas, capped, rules.up, t) <= scale_up_limit(replicas, events, rules.up, t)
    else:
        assert scale_down_limit(replicas, capped, rules.down, t) >= scale_down_limit(replicas, events, rules.down, t)


def test_scale_events_older_than_the_longest_period_are_dropped() -> None:
    events = [ScaleEvent(timestamp=T0 - timedelta(seconds=s), from_replicas=1, to_replicas=2) for s in (10, 100, 1000)]
    assert [e.timestamp for e in prune_scale_events(events, 120, T0)] == [T0 - timedelta(seconds=100),
                                                                          T0 - timedelta(seconds=10)]
