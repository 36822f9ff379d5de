"""The multi-member gzip stream the engine writes: any chunking decompresses to the original; damage is caught."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.gzip_codec import gunzip_chunks


def members(blocks: list[bytes]) -> bytes:
    out = b""
    for block in blocks:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        out += c.compress(block) + c.flush()
    return out


def rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=60, deadline=None)
@given(blocks=st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=8))
def test_any_chunking_of_any_members_round_trips(blocks: list[bytes], cuts: list[int]) -> None:
    stream = members(blocks)
    assert b"".join(gunzip_chunks(iter(rechunk(stream, cuts)))) == b"".join(blocks)
    assert gzip.decompress(stream) == b"".join(blocks)  # what `gunzip -c` sees


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(st.binary(min_size=1, max_size=2000), min_size=1, max_size=4),
       drop=st.integers(min_value=1, max_value=30))
def test_truncation_is_detected(blocks: list[bytes], drop: int) -> None:
    """Inside a member; a cut exactly between members is a valid shorter stream, caught by the manifest's
    size/sha256 and the dump trailer instead (tests/integration/backups)."""
    stream = members(blocks)
    boundaries = set(itertools.accumulate(len(members([b])) for b in blocks))
    assume(max(0, len(stream) - drop) not in boundaries)
    with pytest.raises(IntegrityError):
        list(gunzip_chunks(iter([stream[: max(0, len(stream) - drop)]])))


def test_empty_and_garbage_streams_are_rejected() -> None:
    with pytest.raises(IntegrityError, match="truncated"):
        list(gunzip_chunks(iter([])))
    with pytest.raises(IntegrityError, match="corrupt"):
        list(gunzip_chunks(iter([b"this is not gzip at all"])))
