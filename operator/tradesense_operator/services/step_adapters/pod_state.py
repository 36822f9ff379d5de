"""What a pod's status says, read the way kubectl reads it: Ready, Terminating, finished, and why not ready.

The waits (`wait-pods-ready`, `delete-pods`, `rollout-status`) share these readings so they agree on which
pods can still become Ready (not Terminating, not Failed/Succeeded: an evicted pod never comes back) and
name the others with their reason. Pure functions over pod JSON; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from tradesense_operator.clients.kube import JsonDict

LISTED = 10  # pod names quoted in a message; the rest are counted
FINISHED_PHASES = ("Failed", "Succeeded")


def is_ready(obj: JsonDict) -> bool:
    """Condition Ready=True, the test `kubectl wait --for=condition=ready` applies (pods and nodes alike)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def is_terminating(pod: JsonDict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: JsonDict) -> bool:
    """Phase Failed or Succeeded (evicted, OOM-killed on a node under pressure, completed): never Ready again."""
    return (pod.get("status") or {}).get("phase") in FINISHED_PHASES


def can_become_ready(pod: JsonDict) -> bool:
    return not is_terminating(pod) and not is_finished(pod)


def name_of(obj: JsonDict) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def uid_of(obj: JsonDict) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def problem(pod: JsonDict) -> str:
    """Why a pod is not ready, in kubectl's words: its status reason (Evicted), a container's waiting reason
    (ImagePullBackOff, CrashLoopBackOff), Terminating, else the phase."""
    status = pod.get("status") or {}
    if is_finished(pod):
        return str(status.get("reason") or status.get("phase"))
    if is_terminating(pod):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    if status.get("phase") == "Running":
        return "Running, not Ready"
    return str(status.get("phase") or "Unknown")


def restarts(pod: JsonDict) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def described(pods: Iterable[JsonDict]) -> str:
    """`name (reason), …` for at most LISTED pods, then how many more."""
    items = [f"{name_of(p)} ({problem(p)})" for p in pods]
    text = ", ".join(items[:LISTED])
    return text + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")
