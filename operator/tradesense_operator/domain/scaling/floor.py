"""Incident scale floors: how a runbook incident's scale-out and a ScalingPolicy avoid fighting.

The incident's scale action (e.g. high-cpu: "scale to 8") annotates the Deployment with
`ops.tradesense.io/scale-floor`. Until `until`, the policy treats `replicas` as its minReplicas (and lets
it exceed maxReplicas: the incident is an explicit, time-bounded human/runbook decision). After `until`
the floor is ignored and the policy's normal stabilization brings replicas back down gradually.

Value: one JSON object `{"replicas": 8, "until": "2026-01-05T15:30:00Z", "incident": "ns/name"}` or a
JSON list of them (several incidents at once; the highest live floor wins).

Owns the annotation's format and which floor is live; must not read or patch the Deployment or read a
clock (callers pass `now`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

SCALE_FLOOR_ANNOTATION = "ops.tradesense.io/scale-floor"


@dataclass(frozen=True)
class ScaleFloor:
    """A minimum replica count an incident holds until a deadline."""

    replicas: int
    until: datetime
    incident: str

    def active(self, now: datetime) -> bool:
        """Whether the floor still holds at `now` (strictly before `until`)."""
        return now < self.until

    def to_json(self) -> dict[str, object]:
        """The annotation's wire form of this floor."""
        return {
            "replicas": self.replicas,
            "until": self.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "incident": self.incident,
        }


def _parse_one(item: object, where: str) -> ScaleFloor:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object with replicas, until, incident")  # noqa: TRY004 - a value error to callers
    unknown = set(item) - {"replicas", "until", "incident"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    replicas = item.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ValueError(f"{where}.replicas: expected an integer >= 0")
    until_text = item.get("until")
    if not isinstance(until_text, str):
        raise ValueError(f"{where}.until: expected an RFC 3339 timestamp string")  # noqa: TRY004 - a value error to callers
    try:
        until = datetime.fromisoformat(until_text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{where}.until: not an RFC 3339 timestamp: {until_text!r}") from exc
    if until.tzinfo is None:
        raise ValueError(f"{where}.until: needs a time zone (Z or an offset)")
    incident = item.get("incident")
    if not isinstance(incident, str) or "/" not in incident:
        raise ValueError(f"{where}.incident: expected '<namespace>/<name>'")
    return ScaleFloor(replicas=replicas, until=until.astimezone(UTC), incident=incident)


def parse_scale_floors(text: str) -> list[ScaleFloor]:
    """Parse the annotation value; ValueError names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{SCALE_FLOOR_ANNOTATION}: not JSON") from exc
    if isinstance(data, list):
        return [_parse_one(item, f"{SCALE_FLOOR_ANNOTATION}[{i}]") for i, item in enumerate(data)]
    return [_parse_one(data, SCALE_FLOOR_ANNOTATION)]


def format_scale_floors(floors: Sequence[ScaleFloor]) -> str:
    """Serialise floors: a single object for one floor (the common case), a list otherwise."""
    if len(floors) == 1:
        return json.dumps(floors[0].to_json(), separators=(",", ":"))
    return json.dumps([f.to_json() for f in floors], separators=(",", ":"))


def merge_floor(existing: str | None, new: ScaleFloor, now: datetime) -> str:
    """Add or replace `new.incident`'s floor, dropping expired and unreadable entries."""
    kept: list[ScaleFloor] = []
    if existing:
        try:
            kept = [f for f in parse_scale_floors(existing) if f.active(now) and f.incident != new.incident]
        except ValueError:
            kept = []
    return format_scale_floors([*kept, new])


def highest_active(floors: Iterable[ScaleFloor], now: datetime) -> ScaleFloor | None:
    """The live floor with the most replicas (ties: the one lasting longest), or None."""
    live = [f for f in floors if f.active(now)]
    if not live:
        return None
    return max(live, key=lambda f: (f.replicas, f.until))
