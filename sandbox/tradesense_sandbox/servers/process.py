"""A throwaway server process on a free loopback port: start, wait until ready, stop, kill, restart.

Tests that stop, kill or fill a server must never touch the shared instances, so each such test runs its
own copy from the installed binaries in a private temporary directory. The port is chosen once, so a
restarted server comes back at the same address, the way a restarted pod behind a Service does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, Self

_POLL = 0.05
_PORT_ATTEMPTS = 3


class BinaryMissing(RuntimeError):
    """A server binary is not installed (fixtures turn this into a skip, naming the binary)."""

    def __init__(self, binary: str, hint: str) -> None:
        super().__init__(f"{binary} is not installed ({hint})")
        self.binary = binary


class ServerStartError(RuntimeError):
    """The server exited or never became ready; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (another process could still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_binary(path: str, hint: str) -> str:
    """`path` if it is an executable file, else `BinaryMissing`."""
    resolved = path if Path(path).is_absolute() else shutil.which(path)
    if not resolved or not os.access(resolved, os.X_OK):
        raise BinaryMissing(path, hint)
    return resolved


class ServerProcess(ABC):
    """Lifecycle shared by the throwaway servers; subclasses say how to prepare, launch and probe."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.host = host
        self._port_chosen = port is None
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix=f"tso-{self.name}-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._prepared = False
        self._started_once = False

    # -- to be provided by subclasses ----------------------------------------------------------

    @abstractmethod
    def command(self) -> list[str]:
        """argv of the server."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, most servers need no set-up
        """One-time setup before the first start (config files, initdb)."""

    @abstractmethod
    def probe(self) -> bool:
        """One readiness check; True when the server answers."""

    def run_as(self) -> str | None:
        """OS user to run the server as (None: the current user)."""
        return None

    def before_start(self) -> None:  # noqa: B027 - optional hook
        """Per-start hook (e.g. wait for a killed server's leftovers)."""

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The server's stdout/stderr."""
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.pid is not None

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        """Launch and block until ready (or raise `ServerStartError` with the log tail).

        The free port was only free when we looked; if another process took it before the first start,
        the server fails to bind and is relaunched on a fresh port (a few times). A port given by the caller,
        and every later start, keep the port.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running on port {self.port}")
        if not self._prepared:
            self.prepare()
            self._prepared = True
        attempts_left = _PORT_ATTEMPTS if self._port_chosen and not self._started_once else 1
        while True:
            attempts_left -= 1
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._launch()
            except ServerStartError:
                fresh_log = self.log_path.read_bytes()[log_offset:].decode(errors="replace").lower()
                if attempts_left == 0 or "address already in use" not in fresh_log:
                    raise
                self.port = free_port(self.host)
                continue
            self._started_once = True
            return self

    def _launch(self) -> None:
        self.before_start()
        self._log = self.log_path.open("ab")
        user = self.run_as()
        self._proc = subprocess.Popen(  # noqa: S603 - argv built from fixed binaries and our own values
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            user=user,
            group=user,
            start_new_session=True,  # a test's Ctrl-C must not hit the server before we stop it
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.workdir), "TZ": "UTC"},
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                raise ServerStartError(f"{self.name} exited with code {code} while starting:\n{self.log_tail()}")
            if self.probe():
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(f"{self.name} not ready within {self.startup_timeout:g}s:\n{self.log_tail()}")
            time.sleep(_POLL)

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (the server's own clean-shutdown signal), SIGKILL if it overstays `timeout`."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(self.stop_signal)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout)
        self._proc = None
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait(timeout=15.0)
        self._proc = None
        self._close_log()

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and delete the working directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
