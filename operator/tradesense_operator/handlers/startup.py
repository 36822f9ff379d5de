"""Operator start-up and shutdown: kopf settings, and the Runtime and incident engine kept in memo (never globals)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.common import GROUP
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.config import Settings
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.runtime import Runtime

KOPF_STORAGE_PREFIX = "operator.tradesense.io"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations of its own, so `status` holds only what we own.

    The prefix must differ from the user-facing `ops.tradesense.io/*` annotations (run-now, paused, alert
    status): kopf ignores every annotation under its storage prefix when computing diffs, which would make
    handlers on those annotations never fire.
    """
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our services post their own, better-worded Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    runtime = await ensure_runtime(memo)
    if not isinstance(getattr(memo, "incident_engine", None), IncidentEngine):
        # One engine for every incident (kopf gives each object a shallow copy of this memo): the lock
        # waiters of this process wake each other through it, and nothing is kept twice.
        memo.incident_engine = IncidentEngine.standard(runtime)


async def ensure_runtime(memo: kopf.Memo) -> Runtime:
    """The Runtime in memo, built on first use (startup handlers may run in any order)."""
    runtime = getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        runtime = Runtime(kube=await KubeClient.auto(), settings=Settings.from_env())
        memo.runtime = runtime
        memo.runtime_owned = True
    return runtime


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Close client connections on shutdown (only those we opened; an injected Runtime is the caller's)."""
    runtime = getattr(memo, "runtime", None)
    if isinstance(runtime, Runtime) and getattr(memo, "runtime_owned", False):
        await runtime.aclose()
