"""Polling with a deadline: how tests wait for the operator (running in its own thread) to get somewhere."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float = 30.0, *, what: str = "condition") -> None:
    """Poll `check` every 0.1 s; AssertionError naming `what` when it is still false after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")
