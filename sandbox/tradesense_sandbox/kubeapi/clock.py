"""Timestamps in the API server's formats (RFC 3339, UTC, `Z`)."""

from __future__ import annotations

import datetime


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """Seconds precision, like `metadata.creationTimestamp`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime.datetime | None = None) -> str:
    """Microsecond precision, like `eventTime` and lease `renewTime`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
