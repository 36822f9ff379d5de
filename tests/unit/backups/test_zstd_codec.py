"""plain-zstd codec: a streamed frame decompresses to the input; corruption, truncation and trailing bytes fail."""

from __future__ import annotations

import os

import pytest

from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.zstd_codec import ZstdStream, unzstd_chunks

SQL = b"".join(b"INSERT INTO trades VALUES (%d, 'AAPL', %d);\n" % (i, i * 7) for i in range(60_000))


@pytest.mark.parametrize("workers", [1, 2])
def test_stream_round_trip(workers: int) -> None:
    stream = ZstdStream(level=1, workers=workers)
    out = [part for i in range(0, len(SQL), 65536) for part in stream.feed(SQL[i:i + 65536])]
    out += list(stream.finish())
    data = b"".join(out)
    assert len(data) < len(SQL) / 4
    assert b"".join(unzstd_chunks(data[i:i + 1000] for i in range(0, len(data), 1000))) == SQL


def frame() -> bytes:
    stream = ZstdStream(level=3, workers=1)
    return b"".join([*stream.feed(SQL + os.urandom(1000)), *stream.finish()])


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0xFF]) + d[len(d) // 2 + 1:], "corrupt"),
    (lambda d: d[:-20], "truncated"),
    (lambda d: d + b"junk", "trailing"),
    (lambda d: b"", "truncated"),
])
def test_damage_is_detected(damage: object, message: str) -> None:
    data = damage(frame())  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=message):
        list(unzstd_chunks(iter([data])))
