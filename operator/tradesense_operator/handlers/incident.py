"""TradeSenseIncident wiring: one kopf daemon per unfinished incident drives the step engine.

Why a daemon and not create/update handlers: an incident is a long-running procedure (rollouts,
pods becoming Ready, approvals that arrive hours later) whose progress lives in status, not in the
spec diff. The daemon loops `IncidentEngine.advance` — deciding from its own last write, re-reading the
object after each sleep — until the incident is terminal; kopf spawns it again for every unfinished
incident when the operator restarts, which is exactly the crash-resume path. The daemon is the only
writer of the status and releases the lock of a deleted incident; it has no finalizer, so kopf never
PATCHes an incident. The other handlers (`on.event` with filters, never "changing" handlers, which would
make kopf PATCH a diff base of every incident) only wake it early (approvals, cancel, the alert state) or
tell it that its incident is gone.

Errors cross to kopf only here, through `kopf_errors`. The daemon's own API errors never get that far:
the engine records them (condition Stalled and a Warning Event, `services/incidents/stalls.py`) and retries,
so a 400/422 cannot become a PermanentError that leaves the daemon dead and the incident Running forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

import kopf
from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.api.v1alpha1.incident import PLURAL, IncidentPhase
from tradesense_operator.clients.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from tradesense_operator.domain.incident.alert_state import CONDITION as ALERT_CONDITION
from tradesense_operator.domain.incident.alert_state import alert_state
from tradesense_operator.domain.incident.machine import TERMINAL_PHASES
from tradesense_operator.domain.runbooks import PlanError
from tradesense_operator.handlers.field_watch import FieldWatch
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.incidents.engine import WAIT_POLL_FACTOR
from tradesense_operator.services.runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")

RETRY_DELAY_SECONDS = 5.0      # after a transient API failure, when no Runtime says otherwise
FORBIDDEN_DELAY_SECONDS = 60.0  # RBAC problems need a human; retry slowly


def _retry_delay(memo: object) -> float:
    """Retry a transient failure at the engine's idle poll rate (small in tests, seconds in production)."""
    runtime = getattr(memo, "runtime", None)
    if isinstance(runtime, Runtime):
        return runtime.settings.step_poll_seconds * WAIT_POLL_FACTOR
    return RETRY_DELAY_SECONDS


def kopf_errors(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Translate our errors for kopf: transient → TemporaryError(delay), invalid → PermanentError."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except Unavailable as exc:
            delay = max(exc.retry_after or 0.0, _retry_delay(kwargs.get("memo")))
            raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=delay) from exc
        except (Conflict, NotFound) as exc:
            # Someone else wrote meanwhile, or the object went away: re-read and decide again.
            raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=_retry_delay(kwargs.get("memo"))) from exc
        except Forbidden as exc:
            raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=FORBIDDEN_DELAY_SECONDS) from exc
        except PlanError as exc:
            raise kopf.PermanentError(f"invalid spec: {exc.field}: {exc.problem}") from exc
        except (ValidationError, Invalid) as exc:
            raise kopf.PermanentError(f"invalid: {exc}") from exc

    return wrapper


def _engine(memo: kopf.Memo) -> IncidentEngine:
    """The process's engine, from the memo (put there by `startup.configure` or a test), else one built now."""
    engine = getattr(memo, "incident_engine", None)
    if isinstance(engine, IncidentEngine):
        return engine
    engine = IncidentEngine.standard(memo.runtime)
    memo.incident_engine = engine  # a per-object memo: only when no start-up handler shared one
    return engine


def _memo_event(memo: kopf.Memo, key: str) -> asyncio.Event:
    """A per-incident asyncio.Event kept in the per-object memo (shared by the incident's handlers)."""
    event = getattr(memo, key, None)
    if not isinstance(event, asyncio.Event):
        event = asyncio.Event()
        setattr(memo, key, event)
    return event


def _wakeup(memo: kopf.Memo) -> asyncio.Event:
    """Per-incident event that cuts a daemon's sleep short."""
    return _memo_event(memo, "incident_wakeup")


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    """Daemons run only for incidents that are not Succeeded, Failed or Cancelled."""
    return str((status or {}).get("phase") or IncidentPhase.PENDING.value) not in TERMINAL_PHASES


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, delay: float) -> bool:
    """Wait up to `delay` seconds, less when woken or stopped; True when the daemon must stop."""
    if delay > 0 and not wake.is_set() and not stopped:
        waiters = [asyncio.ensure_future(stopped.wait(delay)), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
    wake.clear()
    return bool(stopped)


def _deletion(memo: kopf.Memo) -> asyncio.Event:
    """Per-incident event set when the watch reports the object gone (the daemon has no finalizer to wait on)."""
    return _memo_event(memo, "incident_deleted")


@kopf_errors
async def drive_incident(
    name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Advance the incident until it is terminal (or the operator stops / the object is deleted).

    The daemon has no finalizer (kopf would PATCH every incident twice and diff its whole body for that):
    when the watch reports the incident gone (`incident_deleted`), the engine's work is cancelled — an action
    in flight stops at its next await, as kopf's cancellation of a deleted object's daemon would do — and only
    then is the namespace Lease given back, so nobody else acts in the namespace while it still runs. An
    incident deleted while no operator runs keeps its Lease until the Lease expires. When another finalizer
    keeps a deleted incident (kopf stops the daemon, `RESOURCE_DELETED`) the Lease is given back the same way.
    The engine starts from kopf's body (no GET); its first write is guarded by that body's resourceVersion.
    After a sleep it reads the incident again only when kopf's live body shows a change since its last write.
    """
    if namespace is None:  # the CRD is namespaced; kopf types allow None for cluster-scoped kinds
        raise kopf.PermanentError("TradeSenseIncident without a namespace")
    engine = _engine(memo)
    wake = _wakeup(memo)
    deletion = _deletion(memo)
    try:
        running = asyncio.ensure_future(
            engine.run(namespace, name, sleep=functools.partial(_sleep, stopped, wake), seed=dict(body),
                       latest=lambda: body))
        deleted = asyncio.ensure_future(deletion.wait())
        try:
            await asyncio.wait({running, deleted}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # deleted, or kopf cancels the daemon after its cancellation backoff: so is the engine's work
            for task in (running, deleted):
                task.cancel()
            await asyncio.gather(running, deleted, return_exceptions=True)
        if not running.cancelled():
            running.result()  # its error, if any, for kopf_errors
    finally:
        if deletion.is_set() or (stopped.reason is not None
                                 and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED):
            await engine.release_lock(dict(body))


async def incident_deleted(memo: kopf.Memo, **_: Any) -> None:
    """The incident is gone: its daemon (if one runs) stops its work and gives the namespace Lease back."""
    _deletion(memo).set()


def _is_deletion(type: str | None, **_: Any) -> bool:  # noqa: A002  (kopf's keyword)
    return type == "DELETED"


async def wake_engine(memo: kopf.Memo, **_: Any) -> None:
    """spec.approvals or spec.cancel changed: act now instead of at the next poll."""
    _wakeup(memo).set()


def _alert_state_stale(annotations: Mapping[str, str], status: Mapping[str, Any], **_: Any) -> bool:
    """The bridge's alert annotation says something the AlertResolved condition does not show yet."""
    state = alert_state(annotations)
    if state is None:
        return False
    conditions: list[Mapping[str, Any]] = list((status or {}).get("conditions") or [])
    shown: Mapping[str, Any] = next((c for c in conditions if c.get("type") == ALERT_CONDITION), {})
    return (shown.get("status") == "True", shown.get("reason"), shown.get("message")) != (
        state.resolved, state.reason, state.message)


async def alert_state_changed(
    name: str, namespace: str | None, status: Mapping[str, Any], memo: kopf.Memo, **_: Any
) -> None:
    """The bridge marked the source alert firing/resolved.

    A running incident's daemon is woken and records it itself (it is the only status writer while it
    runs); a finished one has no daemon, so the condition is written here. This is an event handler
    with a filter, not a field handler: kopf ignores changes of annotations under its own storage
    prefix (ops.tradesense.io), which is where the bridge writes.
    """
    if namespace is None:
        return
    if _unfinished(status):
        _wakeup(memo).set()
        return
    await _engine(memo).record_alert_state(namespace, name)


def _without_finalizer(registry: kopf.OperatorRegistry, handler_id: str) -> None:
    """kopf gives every daemon a finalizer (added and removed by two PATCHes of each object, each computed by
    diffing the whole body); the incident daemon handles deletion itself (`drive_incident`), so it needs none."""
    spawning = registry._spawning
    spawning._handlers = [
        dataclasses.replace(handler, requires_finalizer=False) if handler.id == handler_id else handler
        for handler in spawning._handlers
    ]


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the incident handlers to `registry` (the default one on import; tests assemble their own)."""
    kopf.daemon(
        GROUP, VERSION, PLURAL, id="incident-engine", registry=registry, when=_unfinished,
        backoff=RETRY_DELAY_SECONDS,  # unexpected errors only; ours are translated by kopf_errors
        # On stop, give an in-flight advance a moment, then cancel: a cancelled step is resumed on
        # restart exactly like a crashed one. Short, because kopf also waits this long (and touches the
        # object) when a finished incident's daemon stops matching the filter.
        cancellation_backoff=0.5, cancellation_timeout=5.0,
    )(drive_incident)
    _without_finalizer(registry, "incident-engine")
    kopf.on.event(GROUP, VERSION, PLURAL, id="incident-deleted", when=_is_deletion,
                  registry=registry)(incident_deleted)
    # Wake-ups are event handlers, not on.field: field handlers make kopf PATCH a diff base of every incident
    # after every change (handlers.field_watch).
    approvals_or_cancel = FieldWatch("spec.approvals", "spec.cancel", key="incident_wake")
    kopf.on.event(GROUP, VERSION, PLURAL, id="wake-on-approvals-or-cancel", when=approvals_or_cancel.changed,
                  registry=registry)(approvals_or_cancel.handler(wake_engine))
    kopf.on.event(GROUP, VERSION, PLURAL, id="alert-state", when=_alert_state_stale,
                  registry=registry)(alert_state_changed)


register(kopf.get_default_registry())
