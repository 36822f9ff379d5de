"""WAL positions and segment files: LSN arithmetic and PostgreSQL's segment naming.

Pure arithmetic so the archive's continuity, retention and restore targeting can be decided (and
table-tested) without a server. Must not do I/O. Segment numbers, not file names, are what every other
piece compares; names are only parsed at the edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


class WalError(ValueError):
    """A malformed LSN or segment name."""


@dataclass(frozen=True, order=True)
class Lsn:
    """A WAL position (64-bit byte offset), printed the way PostgreSQL prints it (`16/B374D848`)."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << 64:
            raise WalError(f"LSN out of range: {self.value}")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """`X/Y` hex form; WalError when malformed."""
        match = _LSN.match(text.strip())
        if match is None:
            raise WalError(f"{text!r} is not an LSN like 0/3000060")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __sub__(self, other: Lsn) -> int:
        """Bytes between two positions."""
        return self.value - other.value


def _check_size(segment_size: int) -> None:
    if segment_size <= 0 or segment_size & (segment_size - 1) or segment_size > 1 << 30:
        raise WalError(f"WAL segment size must be a power of two up to 1 GiB, got {segment_size}")


def segment_of(lsn: Lsn, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Number of the segment holding `lsn`."""
    _check_size(segment_size)
    return lsn.value // segment_size


def segment_start(segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
    """First position of segment `segno`."""
    _check_size(segment_size)
    return Lsn(segno * segment_size)


def segment_end(segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
    """First position after segment `segno` (the next segment's start)."""
    return segment_start(segno + 1, segment_size)


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The 24-hex-digit file name PostgreSQL gives segment `segno` on `timeline`."""
    _check_size(segment_size)
    if not 1 <= timeline <= 0xFFFFFFFF or segno < 0:
        raise WalError(f"invalid timeline {timeline} or segment {segno}")
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def parse_segment_name(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """(timeline, segment number) of a segment file name; WalError for anything else (.partial, .history)."""
    _check_size(segment_size)
    match = _SEGMENT.match(name)
    if match is None:
        raise WalError(f"{name!r} is not a WAL segment name")
    per_id = 0x100000000 // segment_size
    low = int(match.group(3), 16)
    if low >= per_id:
        raise WalError(f"{name!r}: segment part {low:X} too large for {segment_size}-byte segments")
    return int(match.group(1), 16), int(match.group(2), 16) * per_id + low
