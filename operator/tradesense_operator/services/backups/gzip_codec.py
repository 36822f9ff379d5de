"""plain-gzip: pigz-style independent gzip members compressed on a thread pool, and their decoder.

Owns the gzip side of a backup stream (members of one block each, emitted in order; reading a
multi-member stream back with zlib's CRC check per member); it must not touch storage or processes.
zlib releases the GIL, so the pool uses every core, and concatenated members are one valid `.sql.gz`
that the runbook's `gunzip -c | psql` reads unchanged.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from tradesense_operator.services.backups.errors import IntegrityError


def _gzip_member(block: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(block) + compressor.flush()


class GzipMembers:
    """Each fed block becomes an independent gzip member on the pool; members come back in order."""

    def __init__(self, pool: ThreadPoolExecutor, level: int, workers: int) -> None:
        self._pool = pool
        self._level = level
        self._workers = workers
        self._pending: deque[Future[bytes]] = deque()

    def feed(self, block: bytes) -> Iterator[bytes]:
        """Queue one block; yields the members that are ready (at most 2 × workers stay in flight)."""
        self._pending.append(self._pool.submit(_gzip_member, block, self._level))
        while len(self._pending) > 2 * self._workers or (self._pending and self._pending[0].done()):
            yield self._pending.popleft().result()

    def finish(self) -> Iterator[bytes]:
        """The remaining members, in order."""
        while self._pending:
            yield self._pending.popleft().result()

    def cancel(self) -> None:
        """Drop members not started yet (the stream failed)."""
        for future in self._pending:
            future.cancel()


def gunzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a (multi-member) gzip stream; IntegrityError on corrupt, truncated or empty data."""
    decompressor = zlib.decompressobj(31)
    fed = False  # the current member has consumed input but not reached its end
    members = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = decompressor.decompress(data)
                if out:
                    yield out
                if decompressor.eof:
                    members += 1
                    data = decompressor.unused_data
                    decompressor = zlib.decompressobj(31)
                    fed = False
                else:
                    data = b""
    except zlib.error as exc:
        raise IntegrityError(f"gzip data is corrupt: {exc}") from exc
    if fed or members == 0:
        raise IntegrityError("gzip data is truncated")
