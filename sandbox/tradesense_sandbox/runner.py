"""Run the real kopf operator in-process, in its own thread and event loop, against any API server.

Used by the integration tests and `make demo`: `run_operator(cluster)` starts `kopf.operator(...)`
(standalone, cluster-wide or namespaced) with credentials pre-loaded into kopf's vault — so no
login handler is added to a (possibly global) registry and no kubeconfig on the machine is read —
waits until the startup handlers ran, and on exit raises the stop flag and re-raises any crash.
`handle.kill()` instead simulates a crashed pod: the loop stops mid-step, no cleanup handlers run,
sockets are dropped; a new `run_operator` may then start on the same cluster. `handlers_registry` assembles the
private registry such a run uses: the production start-up/cleanup, a Runtime built in the operator's loop, and the
real handlers of the kinds asked for (with `incident_engine` for test actions). It never changes a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import yaml
from kopf._cogs.structs.credentials import Vault  # kopf exports no public Vault; a pre-filled one replaces login

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, TradeSenseIncidentSpec
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import Clock
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.handlers import startup as startup_handlers
from tradesense_operator.observability.metrics import OperatorMetrics
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster

logger = logging.getLogger(__name__)

_ABANDONED: list[tuple[asyncio.AbstractEventLoop, set[asyncio.Task[Any]]]] = []


@dataclass(frozen=True)
class Endpoint:
    """Where the operator connects: server URL, bearer token, default namespace for its Events."""

    server: str
    token: str | None = None
    namespace: str = "default"

    @classmethod
    def of(cls, target: EmulatedCluster | Path | str, token: str | None = None) -> Endpoint:
        """The cluster's admin credentials unless `token` (e.g. the operator's ServiceAccount, operator_rbac.py)."""
        if isinstance(target, EmulatedCluster):
            return cls(target.url, token or target.token)
        if isinstance(target, Path):
            return cls.from_kubeconfig(target)
        return cls(target, token)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Endpoint:
        """The current context's server and token (the kubeconfigs the emulator writes)."""
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        current = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next((u["user"] for u in config.get("users", []) if u["name"] == context.get("user")), {})
        return cls(cluster["server"], user.get("token"), context.get("namespace", "default"))


def default_settings() -> kopf.OperatorSettings:
    """kopf settings for embedded runs: never SIGKILL the test process, reconnect fast."""
    settings = kopf.OperatorSettings()
    # kopf SIGKILLs its own thread (= the whole pytest process) if it exits other than by the stop flag.
    settings.process.ultimate_exiting_timeout = None
    settings.watching.reconnect_backoff = 0.1
    settings.networking.request_timeout = 30
    return settings


class OperatorHandle:
    """A running operator: `stop()` gracefully, or `kill()` abruptly."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        registry: kopf.OperatorRegistry | None,
        memo: Any,
        namespaces: Collection[str] | None,
        settings: kopf.OperatorSettings | None,
    ) -> None:
        self.endpoint = endpoint
        self.registry = registry
        self.memo = memo
        self.namespaces = list(namespaces) if namespaces else None
        self.settings = settings if settings is not None else default_settings()
        self._stop_flag = threading.Event()
        self._ready_flag = threading.Event()
        self._done = threading.Event()
        self._killed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._target, name="kopf-operator", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout: float = 30.0) -> OperatorHandle:
        self._thread.start()
        deadline_hit = not self._wait_ready(timeout)
        if self.error is not None:
            raise RuntimeError("the operator crashed during startup") from self.error
        if deadline_hit:
            self.stop(reraise=False)
            raise TimeoutError(f"the operator did not become ready within {timeout} s")
        return self

    def _wait_ready(self, timeout: float) -> bool:
        step = 0.02
        waited = 0.0
        while waited < timeout:
            if self._ready_flag.wait(step) or self._done.is_set():
                return self._ready_flag.is_set()
            waited += step
        return False

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._done.is_set()

    def stop(self, *, timeout: float = 30.0, reraise: bool = True) -> None:
        """Raise kopf's stop flag (cleanup handlers run), wait, and re-raise a crash."""
        self._stop_flag.set()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the operator did not stop within {timeout} s")
        if reraise and self.error is not None:
            raise RuntimeError("the operator crashed") from self.error

    def kill(self) -> None:
        """Simulate a SIGKILLed pod: stop the loop where it is and drop its connections; no cleanup."""
        loop = self._loop
        if loop is None or self._done.is_set():
            return
        self._killed = True
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)
        # kopf waits for the threading stop flag in an executor thread; release it, or interpreter exit blocks on it.
        # The killed loop no longer runs, so nothing in the operator reacts to the flag.
        self._stop_flag.set()

    # ------------------------------------------------------------------ the operator thread

    def _target(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # handed to the test thread via stop()/start()
            if not self._killed:
                self.error = exc
                logger.exception("the operator crashed")
        finally:
            self._done.set()
            # kopf waits for the threading stop flag in an executor thread; however the operator ended (crash at
            # startup, normal stop), release that thread or interpreter exit blocks joining it.
            self._stop_flag.set()
            if self._killed:
                _abandon(loop)
            else:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

    async def _main(self) -> None:
        info = kopf.ConnectionInfo(
            server=self.endpoint.server,
            token=self.endpoint.token,
            scheme="Bearer" if self.endpoint.token else None,
            default_namespace=self.endpoint.namespace,
        )
        vault = Vault({"tradesense-sandbox": info})
        await kopf.operator(
            registry=self.registry,
            settings=self.settings,
            memo=self.memo,
            standalone=True,
            clusterwide=self.namespaces is None,
            namespaces=self.namespaces or (),
            stop_flag=self._stop_flag,
            ready_flag=self._ready_flag,
            vault=vault,
        )


def _abandon(loop: asyncio.AbstractEventLoop) -> None:
    """Drop a killed operator's loop: close its sockets so the server sees the peer vanish, then forget it."""
    loop.set_exception_handler(lambda _loop, _context: None)  # "Task was destroyed but it is pending" is the point
    selector = getattr(loop, "_selector", None)  # private, but the only handle on a stopped loop's sockets
    if selector is not None:
        for key in list(selector.get_map().values()):
            # Transports register raw fds: shut the connection down through a duplicate, so the peer sees the
            # disconnect now while the original fd is still closed exactly once, by its owner's finalizer.
            with contextlib.suppress(OSError, ValueError):
                duplicate = socket.socket(fileno=os.dup(key.fd))
                try:
                    duplicate.shutdown(socket.SHUT_RDWR)
                finally:
                    duplicate.close()
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # silence the expected destruction
    # Keep the dead loop and its coroutines referenced for the life of the process: if they were collected
    # mid-suite, their `finally` blocks would run against a closed loop and fail whichever test runs then.
    _ABANDONED.append((loop, tasks))
    with contextlib.suppress(Exception):
        loop.close()


@contextlib.contextmanager
def run_operator(
    target: EmulatedCluster | Path | str,
    *,
    token: str | None = None,
    memo: Any = None,
    registry: kopf.OperatorRegistry | None = None,
    namespaces: Collection[str] | None = None,
    settings: kopf.OperatorSettings | None = None,
    timeout: float = 30.0,
) -> Iterator[OperatorHandle]:
    """Run the operator for the duration of the block; re-raise its crash on exit.

    `target` is an `EmulatedCluster` (with `token`: as that token's user instead of the admin), a kubeconfig
    path, or a server URL (with `token`).
    `registry=None` uses kopf's default registry (where `tradesense_operator.handlers.registry`
    registers everything); `namespaces=None` means cluster-wide.
    """
    handle = OperatorHandle(
        Endpoint.of(target, token), registry=registry, memo=memo, namespaces=namespaces, settings=settings
    )
    handle.start(timeout=timeout)
    try:
        yield handle
    finally:
        if not handle.killed:
            handle.stop()


Register = Callable[[kopf.OperatorRegistry], None]
"""Adds handlers to a registry: a kind's `register` (e.g. `handlers.backup.register`), or a start-up addition."""
Planner = Callable[[TradeSenseIncidentSpec], list[PlannedStep]]


def handlers_registry(
    kubeconfig: Path,
    clock: Clock,
    *registers: Register,
    settings: Settings | None = None,
    metrics: OperatorMetrics | None = None,
) -> kopf.OperatorRegistry:
    """A registry with the production start-up/cleanup, a Runtime on `clock`, then `registers` in order.

    The Runtime gets `settings` and `metrics` when given (defaults otherwise, as `Runtime` has them). The kube client's HTTP
    session belongs to the loop that creates it, so the Runtime cannot be built in the caller's loop and injected;
    this start-up handler builds it in the operator's own loop, before any start-up handler of `registers` runs.
    """
    registry = kopf.OperatorRegistry()

    async def inject_runtime(memo: kopf.Memo, **_: Any) -> None:
        memo.runtime = Runtime(
            kube=await KubeClient.from_kubeconfig(str(kubeconfig)),
            clock=clock,
            settings=settings if settings is not None else Settings(),
            metrics=metrics if metrics is not None else OperatorMetrics(),
        )
        memo.runtime_owned = True

    kopf.on.startup(registry=registry)(inject_runtime)
    kopf.on.startup(registry=registry)(startup_handlers.configure)
    kopf.on.cleanup(registry=registry)(startup_handlers.close)
    for register in registers:
        register(registry)
    return registry


def incident_engine(actions: Mapping[StepAction, Action], planner: Planner = resolve_plan) -> Register:
    """For `handlers_registry`: the incident handlers' engine runs `actions` (test doubles, or wrapped real ones).

    Register it before `handlers.incident.register`; the engine is built on the injected Runtime at start-up.
    """

    def register(registry: kopf.OperatorRegistry) -> None:
        async def inject_engine(memo: kopf.Memo, **_: Any) -> None:
            memo.incident_engine = IncidentEngine(memo.runtime, actions=actions, planner=planner)

        kopf.on.startup(registry=registry)(inject_engine)

    return register
