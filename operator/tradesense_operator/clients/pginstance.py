"""A PostgreSQL server process on a restored data directory: start it, wait for recovery to end, stop it.

Used where the operator itself replays WAL (the scheduled test restore into a throwaway instance, and
the restore Job's entrypoint). Owns the `postgres` child and its log; it does not prepare the data
directory (services/backups/pitr_restore does) and decides nothing about targets.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from tradesense_operator.clients.errors import ClientError, Timeout
from tradesense_operator.clients.pgdump import tool_path

LOG_TAIL = 3000


class RecoveryFailed(ClientError):
    """The server exited during recovery; the message carries its log tail."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(f"{message}: {log_tail[-LOG_TAIL:]}")
        self.log_tail = log_tail


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chown_tree(path: Path, user: str) -> None:
    """Give a data directory to the OS user the server runs as (postgres refuses to run as root)."""
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


class LocalServer:
    """`postgres -D <dir>` on a Unix socket only (port number names the socket), socket and log inside `workdir`."""

    def __init__(self, data_dir: Path, workdir: Path, *, run_as: str | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.workdir = workdir
        self.run_as = run_as
        self.port = port or free_port()
        self.log_path = workdir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        sock = self.socket_dir
        sock.mkdir(mode=0o700, exist_ok=True)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(sock, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(  # noqa: S603  (fixed binary, our own arguments)
                [tool_path("postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(sock),
                 "-c", "listen_addresses=", "-c", "logging_collector=off"],
                stdout=log, stderr=subprocess.STDOUT, user=self.run_as, group=self.run_as,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, start_new_session=True)
        finally:
            log.close()

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    @property
    def socket_dir(self) -> Path:
        """The only way in: no TCP listener, the directory is private to the server's OS user."""
        return self.workdir / "sock"

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={user} dbname={dbname}"

    def wait_recovered(self, *, timeout: float, user: str = "postgres") -> None:
        """Until the server accepts connections and is out of recovery; RecoveryFailed if it exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RecoveryFailed(f"postgres exited with status {self.proc.returncode}", self.log_text())
            try:
                with psycopg.connect(self.dsn(user=user), connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and row[0] is False:
                        return
            except psycopg.Error:
                pass
            time.sleep(0.1)
        raise Timeout(f"recovery did not finish within {timeout:.0f}s")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
