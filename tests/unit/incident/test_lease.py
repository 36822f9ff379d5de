"""Per-namespace Lease arithmetic: holder identity, expiry, renewal, take-over bookkeeping."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.domain.incident.lease import (
    Holder,
    LeaseState,
    format_micro_time,
    held_spec,
    lease_state,
    needs_renewal,
    parse_time,
)

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
ME = Holder(namespace="ops", name="tsi-a", uid="u-1")
OTHER = Holder(namespace="ops", name="tsi-b", uid="u-2")


def _spec(holder: Holder | None, renewed_ago: float, duration: int = 60) -> dict[str, object]:
    spec: dict[str, object] = {
        "leaseDurationSeconds": duration,
        "renewTime": format_micro_time(NOW - timedelta(seconds=renewed_ago)),
    }
    if holder:
        spec["holderIdentity"] = holder.identity
    return spec


@pytest.mark.parametrize(
    ("spec", "state"),
    [
        ({}, LeaseState.FREE),
        (_spec(None, 0), LeaseState.FREE),
        (_spec(ME, 10), LeaseState.MINE),
        (_spec(OTHER, 10), LeaseState.HELD),
        (_spec(OTHER, 60), LeaseState.EXPIRED),
        (_spec(ME, 61), LeaseState.EXPIRED),
        ({"holderIdentity": OTHER.identity}, LeaseState.EXPIRED),   # no renew time: cannot be alive
        ({**_spec(OTHER, 1), "leaseDurationSeconds": "60"}, LeaseState.EXPIRED),
    ],
)
def test_lease_state(spec: dict[str, object], state: LeaseState) -> None:
    assert lease_state(spec, me=ME, now=NOW) is state


def test_identity_round_trip_and_description() -> None:
    assert ME.identity == "ops/tsi-a/u-1"
    assert Holder.parse(ME.identity) == ME
    assert Holder.parse("some-controller") is None
    assert ME.describe("ops") == "tsi/tsi-a"
    assert ME.describe("elsewhere") == "tsi/tsi-a in namespace ops"


@pytest.mark.parametrize(("renewed_ago", "renew"), [(0, False), (19, False), (20, True), (59, True)])
def test_renewal_after_a_third_of_the_duration(renewed_ago: float, renew: bool) -> None:
    assert needs_renewal(_spec(ME, renewed_ago), now=NOW) is renew


def test_taking_over_counts_a_transition_and_renewing_keeps_acquire_time() -> None:
    previous = {**_spec(OTHER, 120), "acquireTime": "2026-01-05T10:00:00.000000Z", "leaseTransitions": 4}
    taken = held_spec(ME, now=NOW, duration_seconds=30, previous=previous)
    assert taken["holderIdentity"] == ME.identity
    assert taken["leaseTransitions"] == 5
    assert parse_time(taken["acquireTime"]) == NOW
    later = NOW + timedelta(seconds=15)
    renewed = held_spec(ME, now=later, duration_seconds=30, previous=taken)
    assert renewed["acquireTime"] == taken["acquireTime"]
    assert parse_time(renewed["renewTime"]) == later
    assert renewed["leaseTransitions"] == 5


def test_first_acquisition_is_not_a_transition() -> None:
    assert held_spec(ME, now=NOW, duration_seconds=30)["leaseTransitions"] == 0
    assert held_spec(ME, now=NOW, duration_seconds=30, previous={"leaseTransitions": 2})["leaseTransitions"] == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05T14:30:00.000000Z", NOW),
        ("2026-01-05T14:30:00Z", NOW),
        ("2026-01-05T14:30:00", NOW),
        ("", None),
        (None, None),
        ("garbage", None),
        (17, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected
