"""HttpClient against a local aiohttp server.

Covers: probe outcomes (2xx/3xx ok like `curl -f`, 4xx/5xx not ok, timeout, connection refused — none of them
raising), URL redaction in results, the runbook's smoke-test loop, latency percentiles (with an injected
monotonic clock, so no wall-clock assertions), and post_json's raising contract without the URL in messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from tradesense_operator.clients.errors import Forbidden, Invalid, NotFound, Timeout, Unavailable
from tradesense_operator.clients.http import HttpClient, percentile
from tradesense_sandbox.servers import free_port

from .conftest import ServeApp


def _app(release: asyncio.Event) -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503, text="analytics down")

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/api/v1/health")

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"token": "t"}) if body.get("password") == "right" else web.Response(status=401)

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"failure {code} {request.path_qs}")

    app = web.Application()
    app.router.add_get("/api/v1/health", ok)
    app.router.add_get("/api/v1/trades", ok)
    app.router.add_get("/api/v1/analytics", unavailable)
    app.router.add_get("/hang", hang)
    app.router.add_post("/hang", hang)
    app.router.add_get("/redirect", redirect)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/status/{code}", status)
    return app


@pytest.fixture
async def base(serve_app: ServeApp) -> AsyncIterator[str]:
    release = asyncio.Event()
    url = await serve_app(_app(release))
    yield url
    release.set()  # let hanging handlers finish so the server shuts down promptly


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(default_timeout=5.0) as client:
        yield client


async def test_probe_reports_success_and_http_failures_without_raising(http: HttpClient, base: str) -> None:
    healthy = await http.probe(f"{base}/api/v1/health")
    assert (healthy.status, healthy.ok, healthy.error) == (200, True, None)
    assert healthy.latency_seconds >= 0
    down = await http.probe(f"{base}/api/v1/analytics")
    assert (down.status, down.ok) == (503, False)
    missing = await http.probe(f"{base}/nope")
    assert (missing.status, missing.ok) == (404, False)
    redirected = await http.probe(f"{base}/redirect")
    assert (redirected.status, redirected.ok) == (302, True)  # like curl -f without -L


async def test_probe_posts_json_like_the_runbooks_login_check(http: HttpClient, base: str) -> None:
    good = await http.probe(f"{base}/api/v1/auth/login", method="POST", json={"email": "a@b", "password": "right"})
    bad = await http.probe(f"{base}/api/v1/auth/login", method="post", json={"email": "a@b", "password": "wrong"})
    assert (good.status, bad.status, bad.method) == (200, 401, "POST")


async def test_probe_times_out_and_reports_it(http: HttpClient, base: str) -> None:
    result = await http.probe(f"{base}/hang", timeout=0.2)
    assert result.status is None
    assert not result.ok
    assert result.error == "timed out after 0.2s"


async def test_probe_reports_connection_refused(http: HttpClient) -> None:
    result = await http.probe(f"http://127.0.0.1:{free_port()}/api/v1/health")
    assert result.status is None
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("ClientConnectorError")


async def test_probe_result_url_drops_credentials_and_query(http: HttpClient, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    result = await http.probe(f"http://ops:pa55word@127.0.0.1:{port}/api/v1/health?token=abc123")
    assert result.ok
    assert result.url == f"http://127.0.0.1:{port}/api/v1/health"


async def test_probe_rejects_non_http_urls(http: HttpClient) -> None:
    with pytest.raises(Invalid, match=r"^url:"):
        await http.probe("ftp://example.com/x")


async def test_smoke_test_checks_every_endpoint_in_order(http: HttpClient, base: str) -> None:
    results = await http.smoke_test(base)
    assert [(r.url.removeprefix(base), r.status, r.ok) for r in results] == [
        ("/api/v1/health", 200, True),
        ("/api/v1/trades", 200, True),
        ("/api/v1/analytics", 503, False),
        ("/api/v1/auth", 404, False),
    ]


def _ticks(durations: list[float]) -> Iterator[float]:
    now = 100.0
    for duration in durations:
        yield now
        now += duration
        yield now


async def test_latency_sample_computes_nearest_rank_percentiles(base: str) -> None:
    ticks = _ticks([0.5, 0.1, 0.4, 0.2, 0.3])
    async with HttpClient(monotonic=lambda: next(ticks)) as client:
        summary = await client.latency_sample(f"{base}/api/v1/health", n=5)
    assert (summary.count, summary.errors) == (5, 0)
    assert summary.p50 == pytest.approx(0.3)
    assert summary.p95 == pytest.approx(0.5)
    assert summary.max == pytest.approx(0.5)


async def test_latency_sample_with_no_answers_has_no_percentiles(http: HttpClient) -> None:
    summary = await http.latency_sample(f"http://127.0.0.1:{free_port()}/", n=2)
    assert (summary.count, summary.errors, summary.p50, summary.max) == (2, 2, None, None)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize(
    ("code", "error"),
    [(500, Unavailable), (429, Unavailable), (403, Forbidden), (404, NotFound), (400, Invalid)],
)
async def test_post_json_raises_by_status_without_the_url(
    http: HttpClient, base: str, code: int, error: type[Exception]
) -> None:
    url = f"{base}/status/{code}?secret-token=s3cr3t"
    with pytest.raises(error) as caught:
        await http.post_json(url, {"x": 1}, target="test webhook")
    text = str(caught.value)
    assert text.startswith(f"test webhook: HTTP {code}")
    assert "s3cr3t" not in text
    assert base not in text


async def test_post_json_timeouts_and_refusals_are_transient(http: HttpClient, base: str) -> None:
    with pytest.raises(Timeout):
        await http.post_json(f"{base}/hang", {}, timeout=0.2)
    with pytest.raises(Unavailable) as caught:
        await http.post_json(f"http://127.0.0.1:{free_port()}/hook/secret-path", {})
    assert "secret-path" not in str(caught.value)
    assert caught.value.__cause__ is None
