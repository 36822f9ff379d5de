"""API errors that stop an advance become a `Stalled` condition and a Warning Event — never a dead daemon.

Found on a real API server: a 403 (no RBAC in the target namespace) left an incident Pending with
"planned 4 steps" and nothing saying why; a 400/422 became a kopf PermanentError, after which kopf never
restarts the daemon, so the incident sat Running forever. Here every client error that escapes one
`advance` is:
- named: the call (verb, resource, namespace, as `kubectl auth can-i` would ask it) and the API server's
  own message (which names the rejected field for a 422), bounded so the status write can never be
  rejected for its size;
- recorded: condition `Stalled=True` (kstatus' abnormal-true condition, which GitOps tools read) with the
  reason `Forbidden`, `Invalid`, `NotFound` or `ApiUnavailable`, and a Warning Event when the message
  changes; `Stalled=False` (`Recovered`) after the next advance that gets through;
- retried: slowly for errors a human must fix (RBAC, a rejected request) — the retry is what notices the
  fix, and the daemon's sleep is cut short by `spec.cancel`, so cancel and delete still work at once —
  and at the idle poll for transient ones. Transient errors (5xx, timeouts) are reported only once they
  persist (`TRANSIENT_REPORT_AFTER` in a row): a single 500 is routine and retried silently.

Reporting is best effort: when the status itself cannot be written (the failing call may be that write),
the Event and the log still say why. This module must not decide anything about the incident's steps.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentStatus
from tradesense_operator.clients.errors import (
    ClientError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.transitions import clip
from tradesense_operator.services.incidents.run import StaleStatus, StatusWriter
from tradesense_operator.services.incidents.store import IncidentStore, StatusUnreadable

log = logging.getLogger(__name__)

STALLED = "Stalled"
MESSAGE_CHARS = 1024
"""Bound of the condition and Event message (the API server's own message is cut to fit)."""
SLOW_RETRY_FACTOR = 6
"""Errors a human must fix are retried every 6 idle polls (60 s with the default 2 s step poll)."""
TRANSIENT_REPORT_AFTER = 3

_REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/[^\s?:]*)(?:\?\S*)?: ")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class ApiCall:
    """One REST call in RBAC terms: `verb resource[.group][/subresource]` in `namespace`."""

    verb: str
    resource: str
    namespace: str | None
    name: str | None

    def describe(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-scoped)"
        return f"{self.verb} {self.resource}{f' {self.name}' if self.name else ''}{where}"


def parse_call(message: str) -> ApiCall | None:
    """The call a KubeClient error message starts with (`METHOD /path: …`), in RBAC terms; None if not one."""
    match = _REQUEST.match(message)
    if match is None:
        return None
    method, path = match.groups()
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif rest[:1] == ["namespaces"] and len(rest) <= 2:
        return ApiCall(_verb(method, len(rest) == 2), "namespaces", None, rest[1] if len(rest) == 2 else None)
    if not rest:
        return None
    resource = rest[0] + (f".{group}" if group else "")
    name = rest[1] if len(rest) >= 2 else None
    if len(rest) >= 3:
        resource += f"/{rest[2]}"
    return ApiCall(_verb(method, name is not None), resource, namespace, name)


def _verb(method: str, named: bool) -> str:
    if method == "GET":
        return "get" if named else "list"
    return _VERBS[method]


def explain(exc: ClientError) -> tuple[str, str]:
    """(condition reason, bounded message) for an error that stopped an advance."""
    text = str(exc)
    call = parse_call(text)
    server = text.split(": ", 1)[1] if call is not None and ": " in text else text
    what = call.describe() if call else "a Kubernetes API call"
    if isinstance(exc, Forbidden):
        reason = "Forbidden"
        message = (f"forbidden: the operator may not {what}; grant `{call.verb}` on `{call.resource}`"
                   f"{f' in namespace {call.namespace}' if call.namespace else ''} (a Role bound to its "
                   f"ServiceAccount, see deploy/rbac) — API server: {server}" if call else
                   f"forbidden: {server}")
    elif isinstance(exc, Invalid):
        reason = "Invalid"
        message = f"the API server rejected {what} as invalid: {server}"
    elif isinstance(exc, NotFound):
        reason = "NotFound"
        message = f"not found: {what}: {server}"
    else:
        reason = "ApiUnavailable"
        message = f"the API server did not complete {what}: {type(exc).__name__}: {server}"
    return reason, clip(message + "; retrying", MESSAGE_CHARS)


@dataclass
class _Track:
    failures: int = 0
    reported: str | None = None   # message last recorded; None: nothing recorded by this process
    checked: bool = False         # a Stalled condition left by an earlier process was looked for


@dataclass
class StallReporter:
    """Records why an incident's advance is stuck on the API and when it got past it."""

    store: IncidentStore
    writer: StatusWriter
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def retry_delay(self, exc: ClientError, idle_seconds: float) -> float:
        """Slow for what a human must fix; the idle poll (or the server's Retry-After) for the transient."""
        if isinstance(exc, Conflict):
            return 0.0
        if isinstance(exc, Unavailable):
            return max(exc.retry_after or 0.0, idle_seconds)
        return idle_seconds * SLOW_RETRY_FACTOR

    async def stalled(self, namespace: str, name: str, exc: ClientError) -> bool:
        """Record `exc` (see the module docstring); False when the incident no longer exists."""
        track = self._tracks.setdefault(f"{namespace}/{name}", _Track())
        track.failures += 1
        if isinstance(exc, Conflict):
            return True  # someone wrote meanwhile: the next advance re-reads and decides again
        if isinstance(exc, Unavailable) and track.failures < TRANSIENT_REPORT_AFTER:
            log.info("incident %s/%s: transient API error (%d in a row), retrying: %s",
                     namespace, name, track.failures, clip(str(exc), MESSAGE_CHARS))
            return True
        reason, message = explain(exc)
        log.warning("incident %s/%s stalled: %s", namespace, name, message)
        return await self._record(namespace, name, track, status=True, reason=reason, message=message)

    async def recovered(self, namespace: str, name: str, shown: TradeSenseIncidentStatus | None = None) -> None:
        """An advance got through: clear a Stalled condition (ours, or one left by an earlier process).

        `shown` is the status that advance decided from: without a Stalled=True condition in it and none
        reported by this process, there is nothing to clear and nothing to read.
        """
        track = self._tracks.setdefault(f"{namespace}/{name}", _Track())
        track.failures = 0
        if track.reported is None and (track.checked or (shown is not None and not _stalled(shown))):
            track.checked = True
            return
        track.checked = True
        await self._record(namespace, name, track, status=False, reason="Recovered",
                           message="the Kubernetes API calls of the last advance succeeded")

    def forget(self, namespace: str, name: str) -> None:
        """The daemon ends: drop what was tracked for the incident."""
        self._tracks.pop(f"{namespace}/{name}", None)

    async def _record(self, namespace: str, name: str, track: _Track, *, status: bool, reason: str,
                      message: str) -> bool:
        try:
            obj = await self.store.load(namespace, name)
        except (ClientError, StatusUnreadable) as exc:
            log.warning("incident %s/%s: cannot read it to record %s: %s", namespace, name, reason,
                        clip(str(exc), MESSAGE_CHARS))
            return True
        if obj is None:
            return False
        run = self.writer.open(obj)
        shown = next((c for c in run.status.conditions if c.type == STALLED), None)
        if not status and (shown is None or shown.status != "True"):
            track.reported = None
            return True
        run.status = run.status.model_copy(update={"conditions": set_condition(
            run.status.conditions, type_=STALLED, status=status, reason=reason, message=message,
            now=self.writer.now(), observed_generation=run.obj.generation)})
        if status and track.reported != message:
            await run.events.warning(reason, message)
        elif not status:
            await run.events.normal("Recovered", message)
        try:
            await self.writer.commit(run)  # after the Event: the write carries its timeline entry
        except (ClientError, StaleStatus) as exc:
            log.warning("incident %s/%s: cannot write the %s condition (the Event still says why): %s",
                        namespace, name, STALLED, clip(str(exc), MESSAGE_CHARS))
        track.reported = message if status else None
        return True


def _stalled(status: TradeSenseIncidentStatus) -> bool:
    return any(c.type == STALLED and c.status == "True" for c in status.conditions)
