"""Arithmetic of the per-namespace remediation Lease (coordination.k8s.io/v1).

One incident at a time may change a target namespace. The holder is identified by the incident's
namespace, name and uid (a re-created incident with the same name is a different holder); a Lease
whose holder stopped renewing for longer than its duration is free to take over.

Pure: Lease bodies and verdicts from what it is given; must not call the API server or read a clock (the
lock service does both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

LEASE_NAME = "tradesense-remediation"


class LeaseState(StrEnum):
    """How a Lease looks from one would-be holder."""

    FREE = "Free"          # no holder (never held, or released)
    MINE = "Mine"          # held by us and not expired
    HELD = "Held"          # held by someone else and not expired
    EXPIRED = "Expired"    # held by someone (maybe us) who stopped renewing


@dataclass(frozen=True)
class Holder:
    """An incident as a Lease holder."""

    namespace: str
    name: str
    uid: str

    @property
    def identity(self) -> str:
        """`holderIdentity` value: namespace/name/uid."""
        return f"{self.namespace}/{self.name}/{self.uid}"

    @classmethod
    def parse(cls, identity: str) -> Holder | None:
        """Back from `holderIdentity`; None for identities we did not write."""
        parts = identity.split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(namespace=parts[0], name=parts[1], uid=parts[2])

    def describe(self, from_namespace: str) -> str:
        """How a waiting incident names the holder: tsi/<name> (plus its namespace if different)."""
        if self.namespace == from_namespace:
            return f"tsi/{self.name}"
        return f"tsi/{self.name} in namespace {self.namespace}"


def format_micro_time(moment: datetime) -> str:
    """MicroTime as the API server writes it (RFC 3339, microseconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> datetime | None:
    """A Lease time field (MicroTime or RFC 3339), or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lease_state(spec: Mapping[str, Any], *, me: Holder, now: datetime) -> LeaseState:
    """Classify a Lease spec for `me` at `now`."""
    identity = spec.get("holderIdentity") or ""
    if not identity:
        return LeaseState.FREE
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int) or duration <= 0:
        # A Lease without a usable renew time or duration can never be proven alive: treat as expired.
        return LeaseState.EXPIRED
    if now >= renewed + timedelta(seconds=duration):
        return LeaseState.EXPIRED
    return LeaseState.MINE if identity == me.identity else LeaseState.HELD


def needs_renewal(spec: Mapping[str, Any], *, now: datetime) -> bool:
    """Renew once a third of the duration has passed, leaving two thirds as margin for slow calls."""
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int) or duration <= 0:
        return True
    return now - renewed >= timedelta(seconds=duration / 3)


def held_spec(
    me: Holder | str, *, now: datetime, duration_seconds: int, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Lease spec for `me` (a Holder or a raw holderIdentity) holding it from now.

    Keeps acquireTime while the holder stays and counts transitions like client-go; the one Lease body
    of both the remediation lock and leader election (`services/leadership.py`).
    """
    identity = me if isinstance(me, str) else me.identity
    previous = previous or {}
    keeps = previous.get("holderIdentity") == identity
    transitions = int(previous.get("leaseTransitions") or 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration_seconds,
        "acquireTime": previous.get("acquireTime") if keeps and previous.get("acquireTime")
        else format_micro_time(now),
        "renewTime": format_micro_time(now),
        "leaseTransitions": transitions if keeps else transitions + (1 if previous.get("holderIdentity") else 0),
    }


def new_lease(name: str, namespace: str, spec: Mapping[str, Any], *, labels: Mapping[str, str]) -> dict[str, Any]:
    """A coordination.k8s.io/v1 Lease object to create."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": dict(spec),
    }
