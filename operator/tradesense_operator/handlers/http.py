"""Serve /metrics, /healthz, /readyz and the Alertmanager bridge beside kopf, in the same event loop.

Owns only the server's start and stop; must not define routes or handle alerts (bridge.server does).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from aiohttp import web

from tradesense_operator.bridge.server import HttpState, build_app
from tradesense_operator.handlers.startup import ensure_runtime

log = logging.getLogger(__name__)


@kopf.on.startup()
async def start_http(memo: kopf.Memo, **_: Any) -> None:
    """Serve on settings.http_port (0 disables it, e.g. for several operators in one test process)."""
    runtime = await ensure_runtime(memo)
    port = runtime.settings.http_port
    if port == 0:
        return
    state = HttpState(ready=False, reasons=["starting"])
    runner = web.AppRunner(build_app(runtime, state=state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)  # noqa: S104  (a pod serves its Service on all interfaces)
    await site.start()
    state.ready, state.reasons = True, []
    memo.http_runner = runner
    log.info("serving /metrics, /healthz, /readyz and /alerts on port %d", port)


@kopf.on.cleanup()
async def stop_http(memo: kopf.Memo, **_: Any) -> None:
    """Stop serving on shutdown."""
    runner = getattr(memo, "http_runner", None)
    if isinstance(runner, web.AppRunner):
        await runner.cleanup()
