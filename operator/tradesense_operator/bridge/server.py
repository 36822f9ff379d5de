"""The operator's HTTP endpoint: Alertmanager webhook, /metrics, /healthz, /readyz.

Every check that can reject a request runs before anything is written: size limit, rate limit,
authentication (constant-time), JSON and schema validation. Only then does the alert service create
or update incidents, and every decision it took is logged as one "alert decision" line.
Owns the HTTP surface and its guards; must not map alerts to runbooks (domain.alerts) nor write incidents
itself (services.alerts does).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import ValidationError

from tradesense_operator.api.alertmanager import WebhookPayload
from tradesense_operator.bridge.ratelimit import RateLimiter
from tradesense_operator.clients.errors import ClientError, NotFound, Unavailable
from tradesense_operator.clients.kube import SECRETS as SECRET_KIND
from tradesense_operator.domain.alerts import MappingError, label_value
from tradesense_operator.observability.redaction import SECRETS
from tradesense_operator.services.alerts import AlertService
from tradesense_operator.services.runtime import Runtime

log = logging.getLogger(__name__)

TOKEN_KEY = "token"  # noqa: S105  (the Secret key name, not a value)
TOKEN_CACHE_SECONDS = 30.0
TokenProvider = Callable[[], Awaitable[str | None]]


def secret_token_provider(
    runtime: Runtime, *, monotonic: Callable[[], float] = time.monotonic
) -> TokenProvider:
    """Read the bridge token from its Secret, cached briefly so rotation takes effect within 30 s.

    A missing Secret is cached too (no API call per rejected request); `monotonic` is injectable so a
    test can step over the cache lifetime instead of sleeping through it.
    """
    cache: dict[str, tuple[float, str | None]] = {}

    async def provide() -> str | None:
        hit = cache.get("token")
        if hit and monotonic() - hit[0] < TOKEN_CACHE_SECONDS:
            return hit[1]
        settings = runtime.settings
        try:
            secret = await runtime.kube.get(SECRET_KIND, settings.bridge_token_secret, settings.operator_namespace)
        except NotFound:
            token = None
        else:
            raw = (secret.get("data") or {}).get(TOKEN_KEY)
            try:
                token = base64.b64decode(raw, validate=True).decode("utf-8").strip() if raw else None
            except (ValueError, UnicodeDecodeError):
                # Fail closed (503 "not configured"), and say which Secret without quoting its content.
                log.warning("bridge token Secret %s/%s: key %s is not base64-encoded UTF-8 text",
                            settings.operator_namespace, settings.bridge_token_secret, TOKEN_KEY)
                token = None
            if token:
                SECRETS.register(token)
        cache["token"] = (monotonic(), token)
        return token

    return provide


@dataclass
class HttpState:
    """Readiness is flipped by the operator once its Runtime and watchers are up."""

    ready: bool = False
    reasons: list[str] = field(default_factory=list)


def _presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password or None
    return None


def _reject(runtime: Runtime, status: int, outcome: str, message: str) -> web.Response:
    runtime.metrics.bridge_requests.labels(outcome).inc()
    return web.json_response({"status": "rejected", "reason": outcome, "message": message}, status=status)


def build_app(
    runtime: Runtime,
    *,
    token_provider: TokenProvider | None = None,
    limiter: RateLimiter | None = None,
    state: HttpState | None = None,
) -> web.Application:
    """The aiohttp application (also used directly by tests)."""
    settings = runtime.settings
    provide_token = token_provider or secret_token_provider(runtime)
    rate = limiter or RateLimiter(settings.bridge_rate_per_second, settings.bridge_burst)
    http_state = state or HttpState(ready=True)
    service = AlertService(runtime)
    # aiohttp enforces the size limit while reading and answers 413 itself; +1 KiB so our own check names it.
    app = web.Application(client_max_size=settings.bridge_max_body_bytes + 1024)

    async def alerts(request: web.Request) -> web.Response:
        source = request.remote or "unknown"
        if request.content_length is not None and request.content_length > settings.bridge_max_body_bytes:
            return _reject(runtime, 413, "too-large", f"body over {settings.bridge_max_body_bytes} bytes")
        if not rate.allow(source):
            response = _reject(runtime, 429, "rate-limited", "too many requests from this source")
            # Retry-After is whole seconds (RFC 9110); round up so a sender that obeys it is let in.
            response.headers["Retry-After"] = str(max(1, math.ceil(rate.retry_after(source))))
            return response
        try:
            expected = await provide_token()
        except Unavailable as exc:
            log.warning("bridge token unavailable: %s", exc)
            return _reject(runtime, 503, "token-unavailable", "cannot read the bridge token now")
        presented = _presented_token(request)
        if not expected:
            return _reject(runtime, 503, "not-configured", "bridge token Secret is missing or empty")
        if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
            return _reject(runtime, 401, "unauthorized", "missing or wrong credentials")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reject(runtime, 413, "too-large", f"body over {settings.bridge_max_body_bytes} bytes")
        if len(body) > settings.bridge_max_body_bytes:
            return _reject(runtime, 413, "too-large", f"body over {settings.bridge_max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _reject(runtime, 400, "malformed-json", f"body is not JSON: {exc}")
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}" for err in exc.errors()[:10]
            )
            return _reject(runtime, 400, "invalid-payload", f"not an Alertmanager v4 webhook payload: {problems}")
        try:
            results = await service.handle(payload)
        except MappingError as exc:
            return _reject(runtime, 500, "bad-mapping", str(exc))
        except Unavailable as exc:
            return _reject(runtime, 503, "api-unavailable", str(exc))
        except ClientError as exc:
            return _reject(runtime, 500, "api-error", str(exc))
        runtime.metrics.bridge_requests.labels("accepted").inc()
        for r in results:
            # The audit trail: one line per alert decision, whatever the outcome (label values are sanitised).
            log.info("alert decision: alertname=%s fingerprint=%s outcome=%s namespace=%s incident=%s",
                     label_value(r.alertname) or "-", label_value(r.fingerprint) or "-", r.outcome.value,
                     r.namespace or "-", r.incident or "-")
        return web.json_response(
            {
                "status": "accepted",
                "alerts": [
                    {"fingerprint": r.fingerprint, "alertname": r.alertname, "outcome": r.outcome.value,
                     "incident": r.incident}
                    for r in results
                ],
            }
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=runtime.metrics.render(), content_type="text/plain", charset="utf-8")

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if http_state.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not-ready", "reasons": http_state.reasons}, status=503)

    for path in ("/alerts", "/api/v1/alerts"):  # one receiver, two URLs (the shipped routing uses /alerts)
        app.router.add_post(path, alerts)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
