"""Kill an in-process operator like a SIGKILLed pod, without the test process paying for it afterwards.

`OperatorHandle.kill()` stops the loop mid-step. Two things a real process death would make moot remain:
kopf's executor thread still waits on the stop flag (pytest then hangs at exit, requests-H1.md), and the
abandoned loop's pending coroutines, once garbage-collected, run their cleanup against a closed loop
(unraisable errors that `filterwarnings=error` turns into failures). So: set the flag, and keep the
killed loop's tasks referenced until the interpreter exits.
"""

from __future__ import annotations

import asyncio

from tradesense_sandbox.runner import OperatorHandle

_KILLED_TASKS: list[set[asyncio.Task[object]]] = []


def keep_tasks(loop: asyncio.AbstractEventLoop | None) -> None:
    if loop is not None:
        _KILLED_TASKS.append(asyncio.all_tasks(loop))


def kill_operator(handle: OperatorHandle) -> None:
    loop = handle._loop
    handle.kill()
    keep_tasks(loop)
    handle._stop_flag.set()
