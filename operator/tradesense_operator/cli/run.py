"""`tradesense-operator run`: start the operator against the current kubeconfig (or in-cluster) context.

By default the process first waits for the leader-election Lease (services/leadership.py) and only then
starts kopf (standalone: the Lease, not kopf peering, decides who acts); when it loses the Lease it exits at
once with status 1, so Kubernetes restarts it as a follower instead of two replicas acting. A second
`run` started by mistake (a laptop against the production context) therefore waits instead of acting.
`--standalone` is the explicit opt-out: no Lease, no peering — for one process that is known to be alone
(local runs, benchmarks, tests).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from aiohttp import web

    from tradesense_operator.clients.kube import KubeClient
    from tradesense_operator.services.leadership import ElectionTiming

log = logging.getLogger(__name__)
EXIT_LEADERSHIP_LOST = 1
GC_THRESHOLDS = (50_000, 20, 100)  # young collection every 50,000 net allocations (CPython: 700); see tune_gc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser("run", help="run the operator against the current kubeconfig context")
    parser.add_argument("--namespace", "-n", action="append", default=None,
                        help="watch only these namespaces (default: all)")
    parser.add_argument("--standalone", action="store_true",
                        help="no leader election: act at once, for a process known to be the only one "
                             "(local runs, tests); the default waits for the leader-election Lease")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                        help="kopf liveness endpoint (the Deployment's livenessProbe)")
    election = parser.add_argument_group("leader election (the default: several replicas, one acting)")
    election.add_argument("--leader-elect", action="store_true",
                          help="the default (kept for existing manifests): act only while holding a "
                               "coordination.k8s.io/v1 Lease in the operator namespace")
    election.add_argument("--lease-name", default="tradesense-operator-leader", help="name of the Lease")
    election.add_argument("--lease-duration", type=float, default=15.0,
                          help="seconds a follower waits, after the leader stopped renewing, before taking over")
    election.add_argument("--renew-deadline", type=float, default=10.0,
                          help="seconds the leader keeps trying to renew before it gives up and exits")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds between Lease attempts")
    parser.set_defaults(func=_run)


def tune_gc() -> None:
    """Keep the cyclic garbage collector from stalling the event loop (called once the handlers are imported).

    With CPython's default thresholds, a thousand ScalingPolicies crossing their target together (each holding
    a task, a request and its models in flight) promoted almost everything alive at each young collection to
    the old generation, where it died soon after; the full collections that followed stopped the whole
    operator for 0.3-0.9 s each, three or four times per crossing (bench/scale.py's active part under load).
    The heap is mostly JSON and models that reference counting frees, so young collections can be rarer and
    full ones much rarer. What the imports built (modules, classes, pydantic schemas, the API client's
    models) lives as long as the process: frozen, so no collection walks it again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def identity() -> str:
    """`<pod name>_<random>` like client-go: unique even when a restarted pod keeps its name."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _run(args: argparse.Namespace) -> int:
    if args.standalone and args.leader_elect:
        print("tradesense-operator: --standalone and --leader-elect contradict each other")
        return 2
    # Heavy imports here, so `plan` and `backup` start fast and work without kopf's side effects.
    import kopf  # noqa: PLC0415

    import tradesense_operator.handlers.registry  # noqa: F401, PLC0415  (registers the kopf handlers)
    from tradesense_operator.config import Settings  # noqa: PLC0415
    from tradesense_operator.observability.logs import configure_logging  # noqa: PLC0415
    from tradesense_operator.services.leadership import ElectionTiming  # noqa: PLC0415

    try:
        settings = Settings.from_env()
        timing = ElectionTiming(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        print(f"tradesense-operator: {exc}")
        return 2
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    tune_gc()
    options = {
        "namespaces": args.namespace or [],
        "clusterwide": not args.namespace,
        "liveness_endpoint": args.liveness,
    }
    if args.standalone:
        asyncio.run(_crds_established())
        kopf.run(standalone=True, **options)
        return 0
    # The Lease decides who acts, so kopf's own peering is off: kopf pauses every operator of the same
    # priority it sees (it would leave both replicas idle, not elect one).
    def operator() -> Awaitable[None]:
        return kopf.operator(standalone=True, **options)

    won = asyncio.run(_lead(settings.operator_namespace, args.lease_name, timing, operator, args.liveness,
                           settings.http_port))
    return 0 if won else EXIT_LEADERSHIP_LOST


async def _lead(  # noqa: PLR0917  (one call site)
    namespace: str, lease_name: str, timing: ElectionTiming, operator: Callable[[], Awaitable[None]], liveness: str,
    http_port: int,
) -> bool:
    """Block until leader, run the operator while renewing; False (after exiting) when leadership is lost."""
    from tradesense_operator.clients.kube import KubeClient  # noqa: PLC0415
    from tradesense_operator.domain.clock import SystemClock  # noqa: PLC0415
    from tradesense_operator.services.leadership import LeaderElector, lead  # noqa: PLC0415

    kube = await KubeClient.auto()
    elector = LeaderElector(kube, SystemClock(), namespace=namespace, identity=identity(), name=lease_name,
                            timing=timing)
    waiting = await _follower_endpoints(liveness, http_port)

    async def act() -> None:
        for runner in waiting:  # the leader's kopf and HTTP server take these ports over
            await runner.cleanup()
        await _crds_established(kube)
        await operator()

    try:
        return await lead(elector, act, on_lost=_exit_now)
    finally:
        for runner in waiting:
            await runner.cleanup()
        await kube.close()


async def _crds_established(kube: KubeClient | None = None) -> None:
    """Before kopf watches our kinds: wait (INFO) until their CRDs are Established (services/crd_readiness.py)."""
    from tradesense_operator.clients.kube import KubeClient  # noqa: PLC0415
    from tradesense_operator.services.crd_readiness import wait_until_established  # noqa: PLC0415

    if kube is not None:
        await wait_until_established(kube)
        return
    own = await KubeClient.auto()
    try:
        await wait_until_established(own)
    finally:
        await own.close()


async def _follower_endpoints(liveness: str, http_port: int) -> list[web.AppRunner]:
    """What a follower serves while it waits for the Lease.

    The liveness URL answers 200 (the follower is healthy; the Deployment's readiness probe uses it too, so
    rolling updates can finish). The operator's HTTP port answers 503 + Retry-After "not the leader" (200
    with a `tradesense_operator_leader 0` gauge for /metrics): the Service balances over both pods, and
    Alertmanager retries a 503 rather than losing the alert to a refused connection.
    """
    from aiohttp import web  # noqa: PLC0415

    parsed = urlparse(liveness)
    health = web.Application()

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"leader": False, "waiting": "for the leader-election Lease"})

    health.router.add_get(parsed.path or "/", alive)
    runners = [await _serve(health, parsed.hostname or "0.0.0.0", parsed.port or 80)]  # noqa: S104
    if http_port:
        http = web.Application()

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text="# this replica is a follower\ntradesense_operator_leader 0\n",
                                content_type="text/plain")

        async def not_leader(_: web.Request) -> web.Response:
            return web.json_response({"error": "this replica is not the leader; retry"}, status=503,
                                     headers={"Retry-After": "5"})

        http.router.add_get("/metrics", metrics)
        http.router.add_route("*", "/{tail:.*}", not_leader)
        runners.append(await _serve(http, "0.0.0.0", http_port))  # noqa: S104
    return runners


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    from aiohttp import web  # noqa: PLC0415

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _exit_now() -> None:
    """Leadership lost: stop this process before it can act again (no cleanup handlers, on purpose)."""
    log.critical("leadership lost: exiting so that only the new leader acts")
    logging.shutdown()
    os._exit(EXIT_LEADERSHIP_LOST)
