"""Exponential backoff between attempts, capped, and the retry budget (retries + 1 attempts)."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.domain.incident.retry import backoff_delay, next_attempt_at

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (8, 256.0), (9, 300.0), (10_000, 300.0)],
)
def test_backoff_doubles_from_base_up_to_cap(failures: int, expected: float) -> None:
    assert backoff_delay(failures, base=2.0, cap=300.0) == expected


@pytest.mark.parametrize(("failures", "base", "cap"), [(0, 1.0, 10.0), (1, 0.0, 10.0), (1, 1.0, -1.0)])
def test_backoff_rejects_meaningless_input(failures: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        backoff_delay(failures, base=base, cap=cap)


@pytest.mark.parametrize(
    ("attempts", "retries", "expected"),
    [
        (1, 2, NOW + timedelta(seconds=1)),
        (2, 2, NOW + timedelta(seconds=2)),
        (3, 2, None),      # 3 attempts = 1 + 2 retries: exhausted
        (1, 0, None),      # no retries at all
    ],
)
def test_next_attempt_until_retries_are_used_up(attempts: int, retries: int, expected: datetime | None) -> None:
    assert next_attempt_at(attempts=attempts, retries=retries, now=NOW, base=1.0, cap=60.0) == expected
