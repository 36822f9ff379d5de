"""Fencing: an action runs only while its incident holds the namespace Lease.

Owns the keeper that renews the per-namespace Lease in the background for as long as one attempt's
action runs (an action may run far longer than the Lease: a restore allows an hour against a 60 s
Lease), and stops the action when the Lease is lost. Lost means: the Lease is found held by someone
else, or it could not be renewed within the renew deadline (two thirds of its duration, so we give
up before anyone else may take it over). The action is cancelled at its next await, which is the
safe point every action is written for (it checkpoints before and after each effect). This module
must not record anything in status: the step runner records the interruption.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tradesense_operator.clients.errors import ClientError
from tradesense_operator.services.incidents.lock import NamespaceLock

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class LockLost(Exception):
    """The namespace Lease was lost while an action ran; the message says how (no secrets)."""


async def hold_while(
    lock: NamespaceLock, work: Coroutine[Any, Any, T], *, interval: float, sleep: Sleep = asyncio.sleep
) -> T:
    """Run `work` while renewing `lock` every `interval` seconds; cancel it and raise LockLost if the lock goes.

    The renewal itself is cheap between thirds of the Lease duration (`NamespaceLock.acquire` makes no
    API call then), so `interval` can be the step poll interval.
    """
    worker: asyncio.Task[T] = asyncio.ensure_future(work)
    keeper = asyncio.ensure_future(_keep(lock, interval=interval, sleep=sleep))
    try:
        await asyncio.wait({worker, keeper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        worker.cancel()
        keeper.cancel()
        await asyncio.gather(worker, keeper, return_exceptions=True)
        raise
    if worker.done():
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        return worker.result()
    worker.cancel()  # the keeper returned: the lock is lost
    await asyncio.gather(worker, return_exceptions=True)
    raise LockLost(keeper.result())


async def _keep(lock: NamespaceLock, *, interval: float, sleep: Sleep) -> str:
    """Renew until the lock is lost; return why."""
    while True:
        await sleep(interval)
        try:
            result = await lock.acquire()
        except ClientError as exc:
            if lock.renew_deadline_passed():
                return f"could not renew the namespace lock within its renew deadline ({type(exc).__name__}: {exc})"
            log.warning("renewing the namespace lock failed, retrying: %s", exc)
            continue
        if not result.acquired:
            return f"the namespace lock is held by {result.holder or 'another holder'}"
