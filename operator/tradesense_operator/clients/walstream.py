"""Replication-protocol tools: the pg_receivewal archiver process, pg_basebackup, and WAL positions.

Owns the child processes and the two SQL reads the archiver needs (server WAL position, slot position).
Must not decide anything about the archive (continuity, retention, windows): that is domain/backups/pitr.
The password reaches children only through PGPASSWORD (PgTarget.env), never argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tradesense_operator.clients.errors import ClientError, Unavailable
from tradesense_operator.clients.pgdump import PgTarget, ToolFailed, tool_path

STDERR_TAIL = 2000


def _run(tool: str, args: list[str], target: PgTarget, *, timeout: float) -> str:
    try:
        result = subprocess.run(  # noqa: S603  (argv from our own flags, no shell)
            [tool_path(tool), *args], capture_output=True, text=True, env=target.env(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"{tool} did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise ToolFailed(tool, result.returncode, result.stderr[-STDERR_TAIL:])
    return result.stdout


def create_slot(target: PgTarget, slot: str) -> None:
    """Create the physical slot if missing, reserving WAL at once (a REPLICATION role may do this).

    Reserving immediately matters: a slot created without it holds nothing until a client first
    streams through it, and the segments between would be recycled.
    """
    try:
        with target.connect() as conn:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                         "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (slot, slot))
    except psycopg.errors.DuplicateObject:
        return
    except psycopg.Error as exc:
        raise Unavailable(f"{target.describe()}: cannot create slot {slot} ({type(exc).__name__})") from exc


class Receiver:
    """A pg_receivewal child streaming into `directory` through `slot`; it exits when the stream breaks.

    `--no-loop` makes every disconnect visible (the supervisor restarts it and counts the restart);
    `--synchronous` flushes and reports each write at once, so the slot's position is what is on disk.
    """

    def __init__(self, target: PgTarget, directory: Path, slot: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(  # noqa: S603  (argv from our own flags, no shell)
            [tool_path("pg_receivewal"), "-D", str(directory), "--slot", slot, "--no-loop", "--synchronous",
             "--status-interval", "1", "--no-password"],
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=target.env(), start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_reason(self) -> str:
        """Exit status and stderr tail of a process that has ended ("" while it runs)."""
        code = self.proc.poll()
        if code is None:
            return ""
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", errors="replace").strip()[-STDERR_TAIL:]
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"pg_receivewal ended ({how}): {tail}"

    def stop(self) -> None:
        """SIGINT (pg_receivewal flushes and exits), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._stderr.close()


@dataclass(frozen=True)
class BaseBackupFiles:
    """What pg_basebackup wrote: the data-directory tar and the WAL range it needs."""

    tar: Path
    start_lsn: str
    end_lsn: str
    timeline: int


def base_backup(target: PgTarget, directory: Path, *, label: str, timeout: float) -> BaseBackupFiles:
    """`pg_basebackup -Ft -X none` into `directory` (empty); the WAL it needs comes from the archive."""
    _run("pg_basebackup", ["-D", str(directory), "-Ft", "-X", "none", "--checkpoint", "fast", "-l", label,
                           "--no-password"], target, timeout=timeout)
    try:
        manifest = json.loads((directory / "backup_manifest").read_text())
        ranges = manifest["WAL-Ranges"]
        timeline = int(ranges[-1]["Timeline"])
        return BaseBackupFiles(directory / "base.tar", ranges[0]["Start-LSN"], ranges[-1]["End-LSN"], timeline)
    except (OSError, KeyError, IndexError, ValueError) as exc:
        raise ClientError(f"pg_basebackup wrote no usable backup_manifest: {exc}") from exc


def positions(target: PgTarget, slot: str) -> tuple[str, str | None]:
    """(server's current WAL position, the slot's restart position or None when the slot is missing)."""
    try:
        with target.connect() as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text, (SELECT restart_lsn::text FROM "
                               "pg_replication_slots WHERE slot_name = %s)", (slot,)).fetchone()
    except psycopg.Error as exc:
        raise Unavailable(f"{target.describe()}: cannot read WAL positions ({type(exc).__name__})") from exc
    assert row is not None
    return str(row[0]), (str(row[1]) if row[1] is not None else None)
