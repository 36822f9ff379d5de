"""Data-moving work an incident step owns: when its attempt is cancelled or times out, the work is really stopped
before the cancellation goes on, so an incident is never terminal and its lock never released while a restore
or a safety backup still writes.

Why not `asyncio.to_thread` alone: cancelling the await leaves the thread (and its psql/pg_dump/pg_restore
child and that child's server backend) running while the engine records the attempt failed and, at the end,
releases the namespace lock — a second incident could then restore into the same database concurrently.

Chosen: the work keeps its synchronous code (the same functions the CLI and the BackupPolicy jobs run), in a
thread of its own, but every connection it opens — psycopg and the tools' libpq — carries an application_name
unique to this work (`PgTarget.application_name`). On cancellation we
1. end its sessions server-side with `pg_terminate_backend` by that application_name (repeatedly, so a
   connection opened in the meantime is ended too): the server, which is what is written, stops at once; the
   restore runs in one transaction, so it rolls back; a psql/pg_dump/pg_restore whose backend is gone exits,
   and the thread's next read or write of its pipes fails;
2. wait until the thread has really returned — however long that takes; only then is the cancellation
   (the step's timeout, the daemon's stop on lost leadership or shutdown) let through.

Why not a Kubernetes Job (CloudNativePG's way) or a child Python process: a Job moves the problem (the Job
must then be deleted and awaited the same way) and needs an image, a ServiceAccount and storage mounts per
incident; a child process needs the store and credentials handed over. Ending the backends is what actually
stops the writes in either design, and it works against any PostgreSQL the operator can log in to (ending
sessions of one's own role needs no superuser). The documented resumable state after a stop: the safety
backup has no manifest (it does not count, it is taken again); the restore leaves the database with the
`restoring stamp=…` marker and no restored rows, and the step's next attempt restores it completely
(`services/backups/restore.py`).

This module must not decide whether to retry: it only guarantees that nothing outlives the attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.pgdump import PgTarget

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_POLL_SECONDS = 0.2
STILL_STOPPING_LOG_SECONDS = 30.0
_APP_PREFIX = "tradesense-operator-work-"


def application_name(tag: str) -> str:
    """A PostgreSQL application_name (≤ 63 bytes) unique to one piece of work, e.g. one incident step."""
    return _APP_PREFIX + hashlib.sha256(tag.encode()).hexdigest()[:16]


async def run_owned(work: Callable[[PgTarget], T], target: PgTarget, *, tag: str, what: str) -> T:
    """Run `work(target')` in its own thread, where target' tags every connection; stop it for real on cancel."""
    owned = replace(target, application_name=application_name(tag))
    job: Future[T] = Future()

    def body() -> None:
        if not job.set_running_or_notify_cancel():
            return
        try:
            job.set_result(work(owned))
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting coroutine)
            job.set_exception(exc)

    thread = threading.Thread(target=body, name=f"owned-{what}", daemon=True)
    thread.start()
    try:
        return await asyncio.wrap_future(job)
    except asyncio.CancelledError:
        await _stop(owned, thread, what)
        raise


async def _stop(owned: PgTarget, thread: threading.Thread, what: str) -> None:
    """End the work's sessions until its thread has returned; a repeated cancel does not cut this short."""
    name = owned.application_name
    log.warning("%s cancelled: ending its database sessions (%s) and waiting for it to stop", what, name)
    ended = 0
    waited = 0.0
    while thread.is_alive():
        try:
            ended += await asyncio.to_thread(pgdump.terminate_application, owned, name)
            await asyncio.to_thread(thread.join, STOP_POLL_SECONDS)
        except ClientError as exc:
            log.warning("%s: cannot end its sessions yet (%s); still waiting for it to stop", what, exc)
            await _uncancellable_sleep(STOP_POLL_SECONDS)
        except asyncio.CancelledError:
            log.warning("%s: cancelled again while stopping; the work is still awaited", what)
        waited += STOP_POLL_SECONDS
        if waited >= STILL_STOPPING_LOG_SECONDS:
            log.error("%s: still running after its sessions were ended; still waiting", what)
            waited = 0.0
    log.warning("%s stopped (%d database sessions ended)", what, ended)


async def _uncancellable_sleep(seconds: float) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        return
