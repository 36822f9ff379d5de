"""SharedReads: identical reads in flight or within the window share one fetch; each caller gets the answer;
failures are never kept; a cancelled caller does not cancel the read others wait for."""

from __future__ import annotations

import asyncio

import pytest

from tradesense_operator.clients import sharing
from tradesense_operator.clients.sharing import SharedReads


class Source:
    """Counts fetches; answers when released."""

    def __init__(self) -> None:
        self.fetches: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    async def fetch(self, key: str) -> str:
        self.fetches.append(key)
        await self.release.wait()
        if self.fail:
            raise ConnectionError(f"{key} unreachable")
        return f"answer to {key}"


async def test_concurrent_identical_reads_share_one_fetch_and_distinct_ones_do_not() -> None:
    source, shared = Source(), SharedReads[str](0.5)
    waiting = [asyncio.ensure_future(shared.read(k, lambda k=k: source.fetch(k))) for k in ("a", "a", "a", "b")]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*waiting) == ["answer to a"] * 3 + ["answer to b"]
    assert sorted(source.fetches) == ["a", "b"]


async def test_an_answer_is_reused_only_within_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(sharing.time, "monotonic", lambda: now[0])
    source, shared = Source(), SharedReads[str](0.5)
    source.release.set()
    await shared.read("q", lambda: source.fetch("q"))
    now[0] += 0.4
    await shared.read("q", lambda: source.fetch("q"))
    assert source.fetches == ["q"]
    now[0] += 0.2
    await shared.read("q", lambda: source.fetch("q"))
    assert source.fetches == ["q", "q"]


async def test_a_failure_reaches_the_waiting_callers_and_is_not_kept() -> None:
    source, shared = Source(), SharedReads[str](60.0)
    source.fail = True
    waiting = [asyncio.ensure_future(shared.read("q", lambda: source.fetch("q"))) for _ in range(2)]
    await asyncio.sleep(0)
    source.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    source.fail = False
    assert await shared.read("q", lambda: source.fetch("q")) == "answer to q"
    assert source.fetches == ["q", "q"]


async def test_a_cancelled_caller_does_not_cancel_the_shared_read() -> None:
    source, shared = Source(), SharedReads[str](0.5)
    first = asyncio.ensure_future(shared.read("q", lambda: source.fetch("q")))
    second = asyncio.ensure_future(shared.read("q", lambda: source.fetch("q")))
    await asyncio.sleep(0)
    first.cancel()
    source.release.set()
    assert await second == "answer to q"
    assert source.fetches == ["q"]


async def test_without_a_window_every_read_fetches() -> None:
    source, shared = Source(), SharedReads[str](0.0)
    source.release.set()
    for _ in range(3):
        await shared.read("q", lambda: source.fetch("q"))
    assert source.fetches == ["q"] * 3
