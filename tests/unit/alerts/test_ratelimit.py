"""Per-source token buckets for the webhook."""

from __future__ import annotations

from tradesense_operator.bridge.ratelimit import RateLimiter


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_source() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(rate_per_second=2.0, burst=3, monotonic=clock)
    assert [limiter.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("10.0.0.2")  # another source has its own bucket
    clock.now += 0.5  # one token back at 2/s
    assert limiter.allow("10.0.0.1")
    assert not limiter.allow("10.0.0.1")
    clock.now += 60  # refill caps at the burst size
    assert [limiter.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
