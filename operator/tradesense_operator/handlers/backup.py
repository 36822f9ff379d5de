"""BackupPolicy wiring: a timer per policy and an immediate reaction to the run-now annotation.

Both call the same service tick under a per-policy asyncio lock, so one process never runs two
backups of a policy at once; across processes (or after a crash) `status.activeBackup` is the lock.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.backup import PLURAL
from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.clients.errors import ClientError, Conflict, Unavailable
from tradesense_operator.clients.kube import BACKUP_POLICIES
from tradesense_operator.services.backups.reconcile import RUN_NOW_ANNOTATION, reconcile
from tradesense_operator.services.runtime import Runtime

TICK_SECONDS = 10.0


def _holder(memo: kopf.Memo) -> str:
    """This operator process's identity for inline-backup locks (new on every start)."""
    holder: str | None = getattr(memo, "backup_holder", None)
    if holder is None:
        holder = secrets.token_hex(6)
        memo.backup_holder = holder
    return holder


def _lock(memo: kopf.Memo, uid: str) -> asyncio.Lock:
    locks: dict[str, asyncio.Lock] | None = getattr(memo, "backup_locks", None)
    if locks is None:
        locks = {}
        memo.backup_locks = locks
    return locks.setdefault(uid, asyncio.Lock())


async def _tick(body: kopf.Body, memo: kopf.Memo) -> None:
    runtime: Runtime = memo.runtime
    async with _lock(memo, str(body.metadata.uid)):
        try:
            # re-read under the lock: the body kopf handed us may predate the status the last tick wrote
            fresh = await runtime.kube.get_or_none(BACKUP_POLICIES, str(body.metadata.name), body.metadata.namespace)
            if fresh is None:
                return
            await reconcile(runtime, fresh, holder=_holder(memo))
        except (Unavailable, Conflict) as exc:
            raise kopf.TemporaryError(str(exc), delay=TICK_SECONDS) from exc
        except ClientError as exc:
            raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=60) from exc


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, sharp=False)
async def backup_schedule(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every tick: decide due runs with the injected clock, run/verify/retain, update status."""
    await _tick(body, memo)


@kopf.on.field(GROUP, VERSION, PLURAL, field=("metadata", "annotations", RUN_NOW_ANNOTATION))
async def backup_run_now(body: kopf.Body, memo: kopf.Memo, new: Any, **_: Any) -> None:
    """A new run-now token triggers a tick right away (the token is recorded, so it fires once)."""
    if new:
        await _tick(body, memo)
