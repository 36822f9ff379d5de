"""Operator start-up and shutdown: kopf settings, and the Runtime and incident engine kept in memo (never globals)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from tradesense_operator.api.v1alpha1.common import GROUP
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.config import Settings
from tradesense_operator.handlers.kopf_memory import release_idle_bodies
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.runtime import Runtime

KOPF_STORAGE_PREFIX = "operator.tradesense.io"


class StatusFreeDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base, built without first deep-copying what kopf drops from it anyway: `status` and the
    metadata other than labels, annotations and owner references (managedFields above all).

    kopf builds a diff base for every watch event of every object (even with no handler that uses it) by
    deep-copying the whole body: for an incident that is mostly its status (plan, steps, timeline) and its
    managedFields (which describe every status field) — in the scale benchmark's profile the largest single
    CPU cost of the operator. A field a handler asks for (none of ours under status) is kept.
    """

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        fields = list(extra_fields or [])
        paths = [field.split(".") if isinstance(field, str) else list(field) for field in fields]
        keep_status = any(path[:1] == ["status"] for path in paths)
        kept_meta = _KEPT_METADATA | {path[1] for path in paths if path[:1] == ["metadata"] and len(path) > 1}
        raw: dict[str, Any] = {key: value for key, value in body.items()
                               if key not in ("status", "metadata") or (key == "status" and keep_status)}
        metadata = body.get("metadata")
        if isinstance(metadata, Mapping):
            raw["metadata"] = {key: value for key, value in metadata.items() if key in kept_meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, raw)), extra_fields=fields)


_KEPT_METADATA = frozenset({"labels", "annotations", "ownerReferences"})  # what kopf's build reads


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations of its own, so `status` holds only what we own.

    The prefix must differ from the user-facing `ops.tradesense.io/*` annotations (run-now, paused, alert
    status): kopf ignores every annotation under its storage prefix when computing diffs, which would make
    handlers on those annotations never fire.
    """
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_STORAGE_PREFIX)
    settings.persistence.diffbase_storage = StatusFreeDiffBase(
        prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration"
    )
    # Our daemons return at once when stopped (an incident's daemon is ending anyway when its phase turns
    # terminal): waiting up to a second for that spares kopf its "sleep, then touch the object" PATCH.
    settings.background.instant_exit_timeout = 1.0
    settings.posting.level = logging.WARNING  # our services post their own, better-worded Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    release_idle_bodies()  # finished incidents keep no body in kopf's memory (handlers.kopf_memory)
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
