"""The stand-in app's HTTP surface: the runbook's endpoints, /metrics, and the /admin controls.

Failure modes apply to every `/api/` route; `/metrics` and `/admin/` stay truthful and reachable, because
they are the test's instruments, not part of the application under observation.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from tradesense_sandbox.app.auth import InvalidToken, TokenSigner, verify_password
from tradesense_sandbox.app.cache import AnalyticsCache, KeyValue, SessionStore
from tradesense_sandbox.app.config import AppConfig
from tradesense_sandbox.app.cpu import SimulatedCpu
from tradesense_sandbox.app.database import Database, DatabaseUnavailable, PoolExhausted
from tradesense_sandbox.app.logs import LogRing, mask_email
from tradesense_sandbox.app.metrics import AppMetrics
from tradesense_sandbox.app.mode import FailureMode, ModeSwitch

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AppState:
    """Everything a request handler needs, built once per app instance."""

    config: AppConfig
    mode: ModeSwitch
    logs: LogRing
    metrics: AppMetrics
    db: Database
    kv: KeyValue
    cache: AnalyticsCache
    sessions: SessionStore
    signer: TokenSigner
    cpu: SimulatedCpu

    @classmethod
    def build(cls, config: AppConfig) -> AppState:
        """Wire the parts together (the pool before the metrics, whose gauge reads it)."""
        mode = ModeSwitch()
        cpu = SimulatedCpu(
            cores=lambda: float(mode.current.cpu_cores),
            seconds_per_request=config.cpu_seconds_per_request,
            labels={"namespace": config.namespace, "pod": config.pod, "container": config.container},
        )
        mode.before_change = cpu.mode_changing
        db = Database(dsn=config.pg_dsn, pool_size=config.db_pool_size, acquire_timeout=config.db_acquire_timeout, mode=mode)
        metrics = AppMetrics(version=config.version, db_connections_active=db.active)
        db.attach_metrics(metrics)
        metrics.registry.register(cpu)
        kv = KeyValue(config.redis_url, config.redis_prefix)
        return cls(
            config=config,
            mode=mode,
            logs=LogRing(config.log_capacity),
            metrics=metrics,
            db=db,
            kv=kv,
            cache=AnalyticsCache(kv, ttl_seconds=config.cache_ttl_seconds, mode=mode, metrics=metrics),
            sessions=SessionStore(kv, ttl_seconds=config.session_ttl_seconds),
            signer=TokenSigner(config.signing_key, ttl_seconds=config.session_ttl_seconds),
            cpu=cpu,
        )


STATE = web.AppKey("tradesense_standin_state", AppState)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _route_label(request: web.Request) -> str:
    """The route template, not the raw path, so label cardinality stays bounded."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, time and access-log every API request, whatever its outcome."""
    if not _is_api(request):
        return await handler(request)
    state = request.app[STATE]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        state.cpu.request_served()
        state.metrics.http_requests.labels(method=request.method, path=route, status=str(status)).inc()
        state.metrics.http_duration.labels(method=request.method, path=route).observe(elapsed)
        level = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        state.logs.write(
            level, "access", f"method={request.method} path={request.path} status={status} duration_ms={elapsed * 1000:.1f}"
        )


@web.middleware
async def inject_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the current failure mode, and turn backend outages into the 503s a real backend would send."""
    if not _is_api(request):
        return await handler(request)
    state = request.app[STATE]
    mode = state.mode.current
    if mode.latency_ms:
        await asyncio.sleep(mode.latency_ms / 1000.0)
    if mode.down:
        return _json({"status": "unavailable", "error": "service down"}, 503)
    if state.mode.next_request_fails():
        state.logs.write("ERROR", "app", f"unhandled exception while serving {request.path}: injected failure")
        return _json({"error": "internal server error"}, 500)
    try:
        return await handler(request)
    except PoolExhausted as exc:
        state.logs.write("ERROR", "db", f"database connection pool exhausted: {exc}")
        return _json({"error": "database connection pool exhausted"}, 503)
    except DatabaseUnavailable as exc:
        state.logs.write("ERROR", "db", str(exc))
        return _json({"error": "database unavailable"}, 503)


async def health(request: web.Request) -> web.Response:
    """Liveness-style check: the process answers."""
    state = request.app[STATE]
    return _json({"status": "healthy", "version": state.config.version})


async def health_detailed(request: web.Request) -> web.Response:
    """Per-dependency reachability; 503 when a configured dependency is down or auth is broken."""
    state = request.app[STATE]
    components: dict[str, dict[str, Any]] = {}
    if state.db.dsn is None:
        components["postgres"] = {"status": "not_configured"}
    else:
        try:
            rtt = await state.db.ping()
            components["postgres"] = {"status": "up", "latency_ms": round(rtt * 1000, 2)}
        except DatabaseUnavailable as exc:
            components["postgres"] = {"status": "down", "error": str(exc)}
    if not state.kv.uses_redis:
        components["redis"] = {"status": "not_configured"}
    else:
        try:
            rtt = await asyncio.wait_for(state.kv.ping(), 2.0)
            components["redis"] = {"status": "up", "latency_ms": round(rtt * 1000, 2)}
        except (RedisError, OSError, TimeoutError) as exc:
            components["redis"] = {"status": "down", "error": type(exc).__name__}
    components["auth"] = {"status": "down" if state.mode.current.auth_broken else "up"}
    components["db_pool"] = {"status": "up", "active": state.db.active(), "size": state.db.pool_size}
    healthy = all(c["status"] in {"up", "not_configured"} for c in components.values())
    body = {"status": "healthy" if healthy else "unhealthy", "version": state.config.version, "components": components}
    return _json(body, 200 if healthy else 503)


async def auth_status(request: web.Request) -> web.Response:
    """The smoke test's `/api/v1/auth`: is the auth service able to log people in."""
    state = request.app[STATE]
    if state.mode.current.auth_broken:
        return _json({"status": "unhealthy", "error": "token signing unavailable"}, 503)
    return _json({"status": "ok", "login": "/api/v1/auth/login"})


async def login(request: web.Request) -> web.Response:
    """Check credentials (users table, or the fixed test user) and issue a signed token with a session."""
    state = request.app[STATE]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": "body must be JSON with email and password"}, 400)
    email = body.get("email") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(email, str) or not isinstance(password, str) or not email:
        return _json({"error": "email and password are required strings"}, 400)

    def refuse(reason: str) -> web.Response:
        state.logs.write("WARNING", "auth", f"login failed user={mask_email(email)} status=401 reason={reason}")
        return _json({"error": "invalid credentials"}, 401)

    if state.mode.current.auth_broken:
        return refuse("token_signing_unavailable")
    user_id: int | None = None
    if state.db.dsn is None:
        if email == state.config.test_user_email and secrets.compare_digest(password, state.config.test_user_password):
            user_id = 1
    else:
        found = await state.db.user_password_hash(email)
        if found is not None and verify_password(password, found[1]):
            user_id = found[0]
    if user_id is None:
        return refuse("invalid_credentials")
    token_id = secrets.token_hex(8)
    try:
        await state.sessions.open(user_id, token_id)
    except (RedisError, OSError) as exc:
        state.logs.write("ERROR", "auth", f"session store unavailable: {type(exc).__name__}")
        return _json({"error": "session store unavailable"}, 503)
    token = state.signer.issue(str(user_id), jti=token_id)
    state.logs.write("INFO", "auth", f"login succeeded user={mask_email(email)} status=200")
    return _json({"access_token": token, "token_type": "bearer", "expires_in": state.signer.ttl_seconds})


async def _authenticated_user(request: web.Request) -> int | None:
    """The user id of a valid bearer token with a live session, None when there is no such token."""
    state = request.app[STATE]
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    if state.mode.current.auth_broken:
        return None
    try:
        claims = state.signer.verify(header.removeprefix("Bearer ").strip())
        user_id = int(claims["sub"])
        session_open = await state.sessions.is_open(user_id, str(claims.get("jti", "")))
    except (InvalidToken, ValueError, KeyError) as exc:
        state.logs.write("WARNING", "auth", f"token rejected status=401 reason={exc}")
        return None
    except (RedisError, OSError) as exc:
        state.logs.write("ERROR", "auth", f"session store unavailable: {type(exc).__name__}")
        return None
    if not session_open:
        state.logs.write("WARNING", "auth", "token rejected status=401 reason=session closed")
        return None
    return user_id


async def whoami(request: web.Request) -> web.Response:
    """Who the bearer token belongs to; 401 for a missing, foreign-key, expired or logged-out token."""
    user_id = await _authenticated_user(request)
    if user_id is None:
        return _json({"error": "not authenticated"}, 401)
    return _json({"user_id": user_id})


async def _user_for(request: web.Request) -> int:
    if "user_id" in request.query:
        try:
            return max(1, int(request.query["user_id"]))
        except ValueError as exc:
            raise web.HTTPBadRequest(
                text='{"error": "user_id must be an integer"}', content_type="application/json"
            ) from exc
    return await _authenticated_user(request) or 1


async def trades(request: web.Request) -> web.Response:
    """The user's latest trades (a database query per request)."""
    state = request.app[STATE]
    user_id = await _user_for(request)
    rows = await state.db.recent_trades(user_id, 20)
    return _json({"user_id": user_id, "trades": rows})


async def analytics(request: web.Request) -> web.Response:
    """Cached analytics summary (the smoke test's `/api/v1/analytics`)."""
    state = request.app[STATE]
    user_id = await _user_for(request)
    value, hit = await state.cache.get_or_compute(f"analytics:summary:{user_id}", lambda: state.db.dashboard(user_id))
    return _json({"user_id": user_id, "total_trades": value["total_trades"], "cached": hit})


async def analytics_dashboard(request: web.Request) -> web.Response:
    """Cached dashboard (the runbook's performance probe target)."""
    state = request.app[STATE]
    user_id = await _user_for(request)
    value, hit = await state.cache.get_or_compute(f"analytics:dashboard:{user_id}", lambda: state.db.dashboard(user_id))
    return _json({**value, "cached": hit})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this instance's registry."""
    body, content_type = request.app[STATE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def get_mode(request: web.Request) -> web.Response:
    """The failure mode in force."""
    return _json(request.app[STATE].mode.current.to_dict())


async def post_mode(request: web.Request) -> web.Response:
    """Change some mode fields (others keep their value); 400 names a bad field."""
    state = request.app[STATE]
    try:
        changes = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": "body must be a JSON object of mode fields"}, 400)
    if not isinstance(changes, dict):
        return _json({"error": "body must be a JSON object of mode fields"}, 400)
    try:
        mode = state.mode.update(**changes)
    except (ValueError, TypeError) as exc:
        return _json({"error": str(exc)}, 400)
    state.logs.write("WARNING", "admin", f"failure mode set: {json.dumps(mode.to_dict(), sort_keys=True)}")
    return _json(mode.to_dict())


async def delete_mode(request: web.Request) -> web.Response:
    """Back to healthy."""
    state = request.app[STATE]
    state.mode.set(FailureMode())
    return _json(state.mode.current.to_dict())


async def get_logs(request: web.Request) -> web.Response:
    """The log ring as text (`?since=<seq>&tail=<n>`); the X-Last-Seq header tells where to resume."""
    state = request.app[STATE]
    try:
        since = int(request.query.get("since", "0"))
        tail = int(request.query["tail"]) if "tail" in request.query else None
    except ValueError:
        return _json({"error": "since and tail must be integers"}, 400)
    return web.Response(text=state.logs.text(since_seq=since, tail=tail), headers={"X-Last-Seq": str(state.logs.last_seq)})


def build_application(state: AppState) -> web.Application:
    """The aiohttp application for one app instance."""
    app = web.Application(middlewares=[instrument, inject_failures])
    app[STATE] = state
    app.router.add_get("/api/v1/monitoring/health", health)
    app.router.add_get("/api/v1/monitoring/health/detailed", health_detailed)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/auth", auth_status)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_get("/api/v1/auth/me", whoami)
    app.router.add_get("/api/v1/trades", trades)
    app.router.add_get("/api/v1/analytics", analytics)
    app.router.add_get("/api/v1/analytics/dashboard", analytics_dashboard)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/mode", get_mode)
    app.router.add_post("/admin/mode", post_mode)
    app.router.add_delete("/admin/mode", delete_mode)
    app.router.add_get("/admin/logs", get_logs)
    return app
