"""Running the stand-in app in-process: as a task in the caller's event loop, or on a background thread.

Async tests use `async with StandinApp(...) as app`; synchronous code (the demo, thread-based fixtures)
uses `with StandinApp(...) as app`, which runs the app's own loop in a daemon thread. Either way the
mode, log ring and metrics are plain thread-safe objects on the instance.

Owns the lifecycle only; must not handle requests (server.py does).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tradesense_sandbox.app.config import AppConfig
from tradesense_sandbox.app.logs import LogRing
from tradesense_sandbox.app.mode import FailureMode
from tradesense_sandbox.app.server import AppState, build_application

_START_TIMEOUT = 10.0


class StandinApp:
    """One stand-in TradeSense backend on a loopback port."""

    def __init__(self, config: AppConfig | None = None, **overrides: Any) -> None:
        base = config or AppConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.state = AppState.build(self.config)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- observation and control -------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the stand-in app is not started")
        return self._port

    @property
    def host(self) -> str:
        """The listen address."""
        return self.config.host

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """`host:port`, the form a Prometheus scrape config wants."""
        return f"{self.host}:{self.port}"

    @property
    def logs(self) -> LogRing:
        """The access/auth log ring."""
        return self.state.logs

    @property
    def mode(self) -> FailureMode:
        """The failure mode in force."""
        return self.state.mode.current

    def set_mode(self, **changes: Any) -> FailureMode:
        """Change some failure-mode fields, e.g. `set_mode(errors=0.5, latency_ms=800)`."""
        mode = self.state.mode.update(**changes)
        self.state.logs.write("WARNING", "admin", f"failure mode set: {mode.to_dict()}")
        return mode

    def reset_mode(self) -> FailureMode:
        """Back to healthy."""
        return self.state.mode.set(FailureMode())

    def rotate_signing_key(self, key: bytes | str) -> None:
        """Sign with a new key from now on; tokens issued before stop verifying (the secret-rotation effect)."""
        self.state.signer.rotate(key)

    def flush_memory_cache(self) -> None:
        """Empty the in-process cache and sessions (with Redis configured, flush Redis instead)."""
        self.state.kv.flush_memory()

    # -- async lifecycle -----------------------------------------------------------------------

    async def start_async(self) -> None:
        """Bind and serve in the running loop; after a stop, the app comes back on the port it had."""
        if self._runner is not None:
            raise RuntimeError("the stand-in app is already started")
        self._runner = web.AppRunner(build_application(self.state), access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._bind(self._port or self.config.port)

    async def _bind(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.config.host, port, shutdown_timeout=0.5)
        await self._site.start()
        # One site per runner, so the runner's addresses are this site's (port 0 resolves here).
        self._port = int(self._runner.addresses[0][1])

    async def stop_async(self) -> None:
        """Stop serving and close backend connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None
        await self.state.db.close()
        await self.state.kv.close()

    async def set_listening_async(self, listening: bool) -> None:
        """Close or reopen the listener on the same port: "connection refused", unlike mode `down`'s 503s."""
        if self._runner is None:
            raise RuntimeError("the stand-in app is not started")
        if not listening and self._site is not None:
            await self._site.stop()
            self._site = None
        elif listening and self._site is None:
            await self._bind(self.port)

    async def __aenter__(self) -> Self:
        await self.start_async()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    # -- background-thread lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Serve from a daemon thread with its own event loop; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("the stand-in app is already started")
        ready: Future[None] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve_until_stopped(ready))
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"standin-app-{id(self):x}", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=_START_TIMEOUT)
        except BaseException:
            self._thread.join(timeout=_START_TIMEOUT)
            self._thread = None
            raise
        return self

    async def _serve_until_stopped(self, ready: Future[None]) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.start_async()
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, which re-raises it
            ready.set_exception(exc)
            await self.stop_async()
            return
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await self.stop_async()

    def _call_in_loop(self, coro: Any) -> Any:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("not running on a background thread; use the *_async methods")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=_START_TIMEOUT)

    def set_listening(self, listening: bool) -> None:
        """Thread-mode twin of `set_listening_async`."""
        self._call_in_loop(self.set_listening_async(listening))

    def stop(self) -> None:
        """Stop the background thread's server; idempotent."""
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be gone
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=_START_TIMEOUT)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
