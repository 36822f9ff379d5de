"""BackupPolicy wiring: one daemon per policy that runs a pass when the policy is due, and not otherwise.

Why a daemon and not a fixed timer: a 10 s timer costs a GET and a status write per policy per tick, even
on a suspended policy with nothing to do until its next scheduled time. The daemon (handlers.due_daemon)
sleeps until `next_pass` says the policy is due — the next scheduled run, maintenance run, staleness, a
lock to harvest or break — on the injected clock, and is woken by any watch event of the policy (an
`on.event` handler: unlike `on.field`, it writes no diffbase annotation), so a run-now token, a resume or
a spec edit is acted on at once.

Passes of one policy never overlap (one daemon per policy, one pass at a time); across processes (or
after a crash) `status.activeBackup` is the lock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.backup import PLURAL
from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.clients.errors import ClientError, Conflict, Unavailable
from tradesense_operator.clients.kube import BACKUP_POLICIES
from tradesense_operator.handlers.due_daemon import Acted, not_our_echo, serve, wake_on_event
from tradesense_operator.services.backups.reconcile import next_pass, reconcile
from tradesense_operator.services.runtime import Runtime

log = logging.getLogger(__name__)

RETRY_SECONDS = 10.0     # after a transient API failure (real time)
CONFLICT_SECONDS = 1.0   # someone else wrote meanwhile (kopf's finalizer, a user): decide again soon
RECHECK_SECONDS = 30.0   # a Job still running, or Secrets not readable yet: neither is a watch event of the policy
FAILED_SECONDS = 60.0    # any other client error (e.g. Forbidden): a person must act


def _holder(memo: kopf.Memo) -> str:
    """This operator process's identity for inline-backup locks (new on every start)."""
    holder: str | None = getattr(memo, "backup_holder", None)
    if holder is None:
        holder = secrets.token_hex(6)
        memo.backup_holder = holder
    return holder


async def run_when_due(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Run a pass (decide due runs, run/verify/retain, update status) each time the policy is due."""
    runtime: Runtime = memo.runtime
    holder = _holder(memo)

    def due_at(view: Mapping[str, Any], now: datetime) -> datetime | None:
        return next_pass(view, now, holder=holder)

    async def act(view: Mapping[str, Any]) -> Acted:
        meta = view.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        try:
            # re-read: a pass decides from the stored object, never from a cached one
            fresh = await runtime.kube.get_or_none(BACKUP_POLICIES, name, namespace)
            if fresh is None:
                return Acted()
            result = await reconcile(runtime, fresh, holder=holder)
        except Conflict as exc:
            log.info("BackupPolicy %s/%s: written meanwhile, deciding again: %s", namespace, name, exc)
            return Acted(retry_in=CONFLICT_SECONDS)
        except Unavailable as exc:
            log.info("BackupPolicy %s/%s: pass interrupted, retrying: %s", namespace, name, exc)
            return Acted(retry_in=RETRY_SECONDS)
        except ClientError as exc:
            log.warning("BackupPolicy %s/%s: pass failed: %s: %s", namespace, name, type(exc).__name__, exc)
            return Acted(retry_in=FAILED_SECONDS)
        recheck = RECHECK_SECONDS if result.waiting_on_job or result.unresolved else None
        return Acted(written=result.written, retry_in=recheck)

    await serve(body, memo, stopped, clock=runtime.clock, due_at=due_at, act=act)


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the BackupPolicy handlers to `registry` (the default one on import; tests assemble their own)."""
    kopf.daemon(GROUP, VERSION, PLURAL, id="backup-schedule", registry=registry,
                cancellation_backoff=1.0, cancellation_timeout=10.0)(run_when_due)
    kopf.on.event(GROUP, VERSION, PLURAL, id="backup-wake", when=not_our_echo, registry=registry)(wake_on_event)


register(kopf.get_default_registry())
