"""A throwaway PostgreSQL 15 cluster for tests that stop, kill, fill or reconfigure the database.

initdb and postgres refuse to run as root, so when we are root the cluster runs as the `postgres` OS user
in a temporary directory it owns. Durability is switched off (fsync, full-page writes): these clusters
exist for seconds and must start fast on a 2-core machine.

Must not touch the shared PostgreSQL (127.0.0.1:5432): every cluster has its own port and directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from tradesense_sandbox.servers.process import ServerProcess, ServerStartError, require_binary

PG_BIN_DIR = "/usr/lib/postgresql/15/bin"
_FAST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "40",
    "shared_buffers": "32MB",
    "max_wal_size": "256MB",
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
}


class ThrowawayPostgres(ServerProcess):
    """initdb + postgres on 127.0.0.1:<free port>, trust auth, superuser `postgres`."""

    name = "postgres"
    user = "postgres"
    """The superuser initdb creates; trust auth, so no password."""
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: abort transactions, checkpoint, exit

    def __init__(
        self,
        *,
        pg_stat_statements: bool = False,
        settings: dict[str, str] | None = None,
        bin_dir: str = PG_BIN_DIR,
        os_user: str = "postgres",
        port: int | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        hint = "Debian package postgresql-15 (make deps)"
        self.initdb_bin = require_binary(str(Path(bin_dir) / "initdb"), hint)
        self.postgres_bin = require_binary(str(Path(bin_dir) / "postgres"), hint)
        self.controldata_bin = require_binary(str(Path(bin_dir) / "pg_controldata"), hint)
        self.pg_stat_statements = pg_stat_statements
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        if pg_stat_statements:
            self.settings["shared_preload_libraries"] = "pg_stat_statements"
            self.settings.setdefault("pg_stat_statements.track", "all")
        self._os_user = os_user if os.geteuid() == 0 else None
        self._orphans: list[int] = []
        super().__init__(port=port, startup_timeout=startup_timeout)

    # -- connection info -----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        """Unix socket directory (inside the temp dir, so several clusters never collide)."""
        return self.workdir / "sock"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq keyword DSN over TCP loopback."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """postgresql:// URL form of `dsn`."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
        """A new synchronous connection (the caller closes it)."""
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its DSN."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    # -- ServerProcess -------------------------------------------------------------------------

    def run_as(self) -> str | None:
        return self._os_user

    def prepare(self) -> None:
        self.socket_dir.mkdir()
        if self._os_user is not None:
            entry = pwd.getpwnam(self._os_user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(  # noqa: S603 - fixed binary, our own arguments
            [
                self.initdb_bin,
                "-D", str(self.data_dir),
                "-U", self.user,
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            user=self._os_user,
            group=self._os_user,
            cwd=self.workdir,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.workdir)},
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServerStartError(f"initdb failed with code {result.returncode}:\n{result.stderr[-2000:]}")

    def command(self) -> list[str]:
        argv = [
            self.postgres_bin,
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", f"listen_addresses={self.host}",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def probe(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def before_start(self) -> None:
        """After a kill, the old backends hold shared memory until they notice; wait for them (bounded)."""
        deadline = time.monotonic() + 10.0
        while self._orphans and time.monotonic() < deadline:
            self._orphans = [pid for pid in self._orphans if _alive(pid)]
            if self._orphans:
                time.sleep(0.05)
        for pid in self._orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._orphans = []

    def kill(self) -> None:
        """SIGKILL the postmaster only, as a crash would; its backends exit on their own."""
        if self.pid is not None:
            self._orphans = _children(self.pid)
        super().kill()

    def cluster_state(self) -> str:
        """pg_controldata's "Database cluster state": "shut down" after `stop()`, "in production" after a kill."""
        result = subprocess.run(  # noqa: S603 - fixed binary, our own arguments
            [self.controldata_bin, "-D", str(self.data_dir)],
            capture_output=True,
            text=True,
            env={"LC_ALL": "C"},
            timeout=30,
            check=True,
        )
        for line in result.stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Database cluster state":
                return value.strip()
        raise RuntimeError("pg_controldata printed no cluster state")

    def backend_pids(self) -> list[int]:
        """Processes of the running cluster other than the postmaster."""
        return _children(self.pid) if self.pid is not None else []


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in task.read_text().split()]
    return children


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
