"""Polling with a deadline: how tests wait for the operator (running in its own thread) to get somewhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, *, what: str = "condition",
               interval: float = 0.1) -> T:
    """Poll `check` every `interval` s and return its first truthy value; AssertionError naming `what` when it is
    still false after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


async def eventually(check: Callable[[], T | None], timeout: float = 30.0, *, what: str = "condition",
                     interval: float = 0.05) -> T:
    """`wait_until` for async tests: poll `check` without blocking the loop; return its truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s")
        await asyncio.sleep(interval)


async def wait_for_phase(
    read: Callable[[], dict[str, Any]], *phases: str, timeout: float = 30.0, what: str = "object"
) -> dict[str, Any]:
    """Poll `read()` every 50 ms without blocking the loop until its status.phase is one of `phases`; return it.

    AssertionError with the last status when the phase is still another after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        obj = read()
        if (obj.get("status") or {}).get("phase") in phases:
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not in {phases} after {timeout}s: {obj.get('status')}")
        await asyncio.sleep(0.05)
