"""plain-zstd: compress the SQL stream with libzstd's worker threads, and decompress it as a stream.

Owns the zstd parameters of a backup (one frame, content checksum on, `workers` threads) and the
checks of reading one back; it must not touch storage or processes. libzstd runs its own threads
(no GIL), so one compression object uses every core while the caller streams blocks through it, and
`zstd -dc file | psql` restores the file like the runbook's `gunzip -c | psql`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import zstandard

from tradesense_operator.services.backups.errors import IntegrityError


class ZstdStream:
    """Feed raw blocks, get compressed bytes back (often empty while the worker threads buffer)."""

    def __init__(self, level: int, workers: int) -> None:
        params = zstandard.ZstdCompressor(level=level, threads=workers if workers > 1 else 0, write_checksum=True)
        self._obj = params.compressobj()

    def feed(self, block: bytes) -> Iterator[bytes]:
        """Compress one block; yields what is ready."""
        out = self._obj.compress(block)
        if out:
            yield out

    def finish(self) -> Iterator[bytes]:
        """End the frame; yields the rest."""
        out = self._obj.flush()
        if out:
            yield out


def _frame_ended(decompressor: zstandard.ZstdDecompressionObj) -> bool:
    return bool(decompressor.eof)


def unzstd_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress one zstd frame; IntegrityError on corrupt (content checksum), truncated or trailing data."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    fed = False
    try:
        for chunk in chunks:
            if not chunk:
                continue
            if _frame_ended(decompressor):
                raise IntegrityError("zstd data has trailing bytes after its frame")
            fed = True
            out = decompressor.decompress(chunk)
            if out:
                yield out
            if _frame_ended(decompressor) and decompressor.unused_data:
                raise IntegrityError("zstd data has trailing bytes after its frame")
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"zstd data is corrupt: {exc}") from exc
    if not fed or not _frame_ended(decompressor):
        raise IntegrityError("zstd data is truncated")
