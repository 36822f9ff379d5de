"""Whether the stored bytes of a single-file backup are a complete dump: on a re-read, or while they are written.

Owns the content half of `verify.integrity` for plain-gzip, plain-zstd and custom: decompress to the
end (gzip's CRC per member, zstd's content checksum, pg_restore reading every custom block), compare
the decompressed size with what pg_dump wrote and require pg_dump's "dump complete" trailer. It must
not open storage or choose backups (dump_pipeline does). `StreamCheck` runs the same check on a thread
over the bytes as they are written, so a backup with integrity verification needs no second
decompression pass: the stored object is then re-read for its sha256 only, which proves that it holds
exactly the bytes that were checked.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.gzip_codec import gunzip_chunks
from tradesense_operator.services.backups.zstd_codec import unzstd_chunks

PLAIN_DUMP_TRAILER = b"-- PostgreSQL database dump complete"
_TAIL = 256


def decoded_sql(fmt: BackupFormat, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The SQL of a plain-gzip or plain-zstd stream (IntegrityError when the codec finds damage)."""
    if fmt is BackupFormat.PLAIN_ZSTD:
        return unzstd_chunks(chunks)
    if fmt is BackupFormat.PLAIN_GZIP:
        return gunzip_chunks(chunks)
    raise ValueError(f"{fmt.value} is not a plain SQL format")


def _read_through(fmt: BackupFormat, chunks: Iterable[bytes], what: str) -> tuple[int, bytes]:
    """Decompress everything; (decompressed size, its last bytes). custom: pg_restore reads every block."""
    if fmt is BackupFormat.CUSTOM:
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                size += len(chunk)
                yield chunk

        try:
            pgdump.check_custom_archive(counted())
        except pgdump.ToolFailed as exc:
            raise IntegrityError(f"{what}: pg_restore cannot read the archive: {exc}") from exc
        return size, PLAIN_DUMP_TRAILER  # the archive has no SQL trailer; pg_restore checked its end
    raw = 0
    tail = b""
    try:
        for block in decoded_sql(fmt, chunks):
            raw += len(block)
            tail = (tail + block[-_TAIL:])[-_TAIL:]
    except IntegrityError as exc:
        raise IntegrityError(f"{what}: {exc}") from exc
    return raw, tail


def _judge(what: str, raw: int, tail: bytes, expected_raw: int) -> None:
    if raw != expected_raw:
        raise IntegrityError(f"{what}: decompressed to {raw} bytes, pg_dump wrote {expected_raw}")
    if PLAIN_DUMP_TRAILER not in tail:
        raise IntegrityError(f"{what}: the SQL dump is incomplete (no 'dump complete' trailer)")


def check_content(fmt: BackupFormat, chunks: Iterable[bytes], *, raw_bytes: int, what: str) -> None:
    """IntegrityError unless `chunks` decompress completely to `raw_bytes` of a finished dump."""
    raw, tail = _read_through(fmt, chunks, what)
    _judge(what, raw, tail, raw_bytes)


class StreamCheck:
    """check_content on a thread, fed the stored bytes while they are written (zlib/zstd release the GIL).

    The thread keeps taking what is fed even after it found damage, so the writer never blocks on it;
    `result` (or `close` on failure) must be called once the stream ends.
    """

    def __init__(self, fmt: BackupFormat, what: str) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
        self._what = what
        self._found: tuple[int, bytes] | None = None
        self._error: Exception | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(fmt,), name="content-check", daemon=True)
        self._thread.start()

    def _fed(self) -> Iterator[bytes]:
        while (chunk := self._queue.get()) is not None:
            yield chunk

    def _run(self, fmt: BackupFormat) -> None:
        fed = self._fed()
        try:
            self._found = _read_through(fmt, fed, self._what)
        except Exception as exc:  # noqa: BLE001  (re-raised by result(); the thread must go on draining)
            self._error = exc
        for _ in fed:  # drain to the end marker
            pass

    def feed(self, data: bytes) -> None:
        """Check these bytes (the same object that is hashed and written: no copy)."""
        self._queue.put(data)

    def close(self) -> None:
        """End the stream and wait for the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def result(self, raw_bytes: int) -> None:
        """IntegrityError unless the fed bytes decompressed to `raw_bytes` of a finished dump."""
        self.close()
        if self._error is not None:
            raise self._error
        if self._found is None:
            raise IntegrityError(f"{self._what}: the content check did not finish")
        _judge(self._what, *self._found, raw_bytes)
