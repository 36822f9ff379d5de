"""BackupPolicy point-in-time recovery wiring: one kopf daemon per policy with spec.pointInTime.enabled.

Why a daemon: the archiver is a long-lived pg_receivewal child that must be restarted when it dies and
stopped when the policy goes away; a daemon lives exactly as long as the object (and its `enabled`).
Each pass re-reads the object; a new generation rebuilds the supervisor so spec changes take effect.
Owns the daemon's lifetime only; must not run archiving or base backups itself (services/backups/pitr_policy).
"""

from __future__ import annotations

from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.backup import PLURAL
from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.kube import BACKUP_POLICIES
from tradesense_operator.services.backups.pitr_policy import PitrSupervisor, build_supervisor
from tradesense_operator.services.backups.policy import PolicyInvalid
from tradesense_operator.services.runtime import Runtime

PASS_SECONDS = 5.0


def _enabled(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("pointInTime") or {}).get("enabled"))


@kopf.daemon(GROUP, VERSION, PLURAL, when=_enabled, cancellation_timeout=30.0)
async def wal_archiver(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: Any,
                       **_: Any) -> None:
    """Archive WAL, take base backups, report the recoverable window until the policy or `enabled` goes."""
    runtime: Runtime = memo.runtime
    name, namespace = str(body.metadata.name), body.metadata.namespace
    supervisor: PitrSupervisor | None = None
    generation: object = None
    try:
        while not stopped:
            fresh = await runtime.kube.get_or_none(BACKUP_POLICIES, name, namespace)
            if fresh is None:
                return
            if supervisor is None or fresh["metadata"].get("generation") != generation:
                if supervisor is not None:
                    await supervisor.close()
                    supervisor = None
                try:
                    supervisor = await build_supervisor(runtime, fresh)
                except PolicyInvalid as exc:
                    logger.warning("point-in-time archiving not started: %s", exc)
                    await stopped.wait(60)
                    continue
                generation = fresh["metadata"].get("generation")
            try:
                await supervisor.step(fresh)
            except ClientError as exc:
                logger.warning("point-in-time archiving pass failed: %s", exc)
            await stopped.wait(PASS_SECONDS)
    finally:
        if supervisor is not None:
            await supervisor.close()
