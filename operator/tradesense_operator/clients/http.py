"""HTTP adapter for the runbook's `curl` checks (probes, smoke tests, latency) and for outgoing webhooks.

Two deliberately different failure contracts:
- `probe`/`smoke_test`/`latency_sample` observe a service; a 503 or a refused connection is the answer,
  not an error, so they return a `ProbeResult` and never raise for HTTP or connection failures.
- `post_json` delivers something (an escalation); failure must be visible and retryable, so it raises
  `clients.errors`. The URL may itself be a secret (Slack and generic webhooks embed their token in the
  path), so its messages never contain the URL or the library's exception text, and are not chained.

One `aiohttp.ClientSession` is created on first use and reused until `aclose()`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp

from tradesense_operator.clients.closing import AsyncClosing
from tradesense_operator.clients.errors import Forbidden, Invalid, NotFound, Timeout, Unavailable

SMOKE_ENDPOINTS = ("health", "trades", "analytics", "auth")
ERROR_BODY_LIMIT = 200


@dataclass(frozen=True)
class ProbeResult:
    """One request's outcome. `ok` follows `curl -f`: a response below 400. `url` has credentials and query removed."""

    url: str
    method: str
    status: int | None
    ok: bool
    latency_seconds: float
    error: str | None = None


@dataclass(frozen=True)
class LatencySummary:
    """Nearest-rank percentiles (seconds) over the requests that got a response; None when none did."""

    count: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def redact_url(url: str) -> str:
    """Drop user-info, query and fragment: the parts of a URL that carry credentials or tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_url(url: str, field: str = "url") -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError as exc:
        raise Invalid(f"{field}: not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{field}: must be an absolute http(s) URL")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (fraction in (0, 1])."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class HttpClient(AsyncClosing):
    """Probes and webhook delivery over one reused aiohttp session."""

    def __init__(self, default_timeout: float = 5.0, *, monotonic: Callable[[], float] = time.perf_counter) -> None:
        if default_timeout <= 0:
            raise Invalid(f"default_timeout: must be positive, got {default_timeout}")
        self.default_timeout = default_timeout
        self._monotonic = monotonic
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        """Close the session (safe to call more than once)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "tradesense-operator"})
        return self._session

    def _timeout(self, timeout: float | None) -> aiohttp.ClientTimeout:
        seconds = self.default_timeout if timeout is None else timeout
        if seconds <= 0:
            raise Invalid(f"timeout: must be positive, got {seconds}")
        return aiohttp.ClientTimeout(total=seconds)

    async def probe(
        self,
        url: str,
        method: str = "GET",
        json: Any = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProbeResult:
        """One request, like `curl -w '%{http_code} %{time_total}'`: redirects are not followed, the body is read."""
        _check_url(url)
        client_timeout = self._timeout(timeout)
        method = method.upper()
        shown = redact_url(url)
        started = self._monotonic()
        try:
            async with self._client_session().request(
                method, url, json=json, timeout=client_timeout, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            return ProbeResult(
                shown, method, None, False, self._monotonic() - started, f"timed out after {client_timeout.total}s"
            )
        except aiohttp.ClientError as exc:
            return ProbeResult(shown, method, None, False, self._monotonic() - started, _describe(exc, url))
        return ProbeResult(shown, method, status, status < 400, self._monotonic() - started)

    async def smoke_test(
        self,
        base_url: str,
        endpoints: Sequence[str] = SMOKE_ENDPOINTS,
        *,
        prefix: str = "/api/v1/",
        timeout: float | None = None,
    ) -> list[ProbeResult]:
        """The runbook's `for endpoint in ...; curl -f $API/api/v1/$endpoint` loop, run concurrently, in order."""
        _check_url(base_url, "base_url")
        if not endpoints:
            raise Invalid("endpoints: at least one endpoint is required")
        path = prefix.strip("/")
        root = f"{base_url.rstrip('/')}/{path}" if path else base_url.rstrip("/")
        urls = [f"{root}/{endpoint.strip('/')}" for endpoint in endpoints]
        return list(await asyncio.gather(*(self.probe(u, timeout=timeout) for u in urls)))

    async def latency_sample(
        self, url: str, n: int = 20, method: str = "GET", timeout: float | None = None
    ) -> LatencySummary:
        """`n` sequential requests (sequential so the sample measures the service, not our own concurrency)."""
        if not 1 <= n <= 10_000:
            raise Invalid(f"n: must be between 1 and 10000, got {n}")
        results = [await self.probe(url, method=method, timeout=timeout) for _ in range(n)]
        answered = sorted(r.latency_seconds for r in results if r.status is not None)
        errors = sum(1 for r in results if not r.ok)
        if not answered:
            return LatencySummary(n, errors, None, None, None, None)
        return LatencySummary(
            n,
            errors,
            percentile(answered, 0.50),
            percentile(answered, 0.95),
            percentile(answered, 0.99),
            answered[-1],
        )

    async def post_json(
        self,
        url: str,
        payload: Any,
        *,
        timeout: float | None = None,
        target: str = "webhook",
        redact: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """POST `payload` as JSON and return the 2xx status; raise otherwise, never revealing the URL.

        `target` names the destination in messages ("slack webhook"); strings in `redact` (e.g. a routing key
        inside the payload) are removed from the response-body excerpt included in error messages.
        """
        _check_url(url)
        client_timeout = self._timeout(timeout)
        try:
            async with self._client_session().post(
                url, json=payload, timeout=client_timeout, allow_redirects=False, headers=headers
            ) as response:
                status = response.status
                body = (await response.text(errors="replace"))[:ERROR_BODY_LIMIT] if status >= 300 else ""
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            raise Timeout(f"{target}: no answer within {client_timeout.total}s") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"{target}: request failed ({type(exc).__name__})") from None
        if 200 <= status < 300:
            return status
        body = scrub(body, (*_url_secrets(url), *redact))
        message = f"{target}: HTTP {status}" + (f": {body.strip()}" if body.strip() else "")
        if status == 429 or status >= 500:
            raise Unavailable(message, retry_after=_seconds(retry_after))
        if status in (401, 403):
            raise Forbidden(message)
        if status in (404, 410):
            raise NotFound(message)
        raise Invalid(message)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace every occurrence of each secret, longest first so a secret's fragments do not survive."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _url_secrets(url: str) -> list[str]:
    """Parts of a webhook URL a receiver might echo back: the whole URL, path and query, and token-like segments."""
    parts = urlsplit(url)
    candidates = [url, parts.query, parts.password or "", parts.username or ""]
    candidates += [value for _, value in parse_qsl(parts.query) if len(value) >= 4]
    if parts.path not in ("", "/"):
        candidates += [parts.path, f"{parts.path}?{parts.query}" if parts.query else ""]
        candidates += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    return candidates


def _describe(exc: aiohttp.ClientError, url: str) -> str:
    """The library's message without the URL's credentials or query (probe URLs are not secret as a whole)."""
    parts = urlsplit(url)
    text = scrub(str(exc) or type(exc).__name__, [parts.query, parts.password or "", parts.username or ""])
    return f"{type(exc).__name__}: {text}"
