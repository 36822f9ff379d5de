"""Prometheus instant queries through prometheus-api-client, reduced to one typed number or a reason.

The library is synchronous (requests), so each query runs in a worker thread. Its default retry policy
(3 retries with exponential back-off) would stretch a Prometheus outage into many seconds per metric,
which delays the fallback the ScalingPolicy promises; we allow one quick retry and a short timeout.

What counts as an answer is decided here, once: exactly one series (or a scalar) with a finite value.
An empty result, NaN, ±Inf or several series come back as `InstantValue(value=None, problem=...)` —
never as zero — and transport failures raise `Unavailable`/`Timeout`, a rejected query `Invalid`.

Sharing (clients.sharing): with `share_seconds`, identical PromQL asked while the same query is in flight,
or within `share_seconds` after its answer, gets that answer instead of a new request — a thousand
ScalingPolicies on the same preset cost one query per round, and each still gets the reading its query
returns.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from tradesense_operator.clients.errors import Invalid, Timeout, Unavailable
from tradesense_operator.clients.sharing import SharedReads

if TYPE_CHECKING:
    from prometheus_api_client.exceptions import PrometheusApiClientException

DEFAULT_TIMEOUT = 5  # seconds (the library types it as int)


@dataclass(frozen=True)
class InstantValue:
    """One query's usable value, or the problem that makes it unusable (a failed evaluation)."""

    value: float | None
    problem: str | None = None
    series: int = 0


def _error_text(exc: PrometheusApiClientException) -> tuple[int | None, str]:
    """Status code and Prometheus' own error message from the library's exception text."""
    text = str(exc)
    status: int | None = None
    if text.startswith("HTTP Status Code "):
        try:
            status = int(text.split()[3])
        except (IndexError, ValueError):
            status = None
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start: text.rfind("}") + 1].encode().decode("unicode_escape"))
            return status, str(body.get("error") or body)[:300]
        except ValueError:
            pass
    return status, text[:300]


def redact(url: str) -> str:
    """The URL without user:password@ (a Prometheus behind basic auth), for messages, Events and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def interpret(result: Any) -> InstantValue:
    """Reduce the `data.result` of an instant query to one finite number."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        samples = [result[1]]  # resultType scalar: [timestamp, "value"]
    elif isinstance(result, list):
        if not result:
            return InstantValue(None, "empty result: no series matched (no data is not zero load)")
        if len(result) > 1:
            labels = ", ".join(json.dumps(item.get("metric", {}), sort_keys=True) for item in result[:3])
            return InstantValue(None, f"{len(result)} series returned, expected one (aggregate with sum/max): {labels}",
                                len(result))
        samples = [result[0].get("value", [None, None])[1]]
    else:
        return InstantValue(None, f"unexpected result shape {type(result).__name__}")
    try:
        value = float(samples[0])
    except (TypeError, ValueError):
        return InstantValue(None, f"not a number: {samples[0]!r}", 1)
    if math.isnan(value):
        return InstantValue(None, "NaN (e.g. a quantile or ratio over no samples)", 1)
    if math.isinf(value):
        return InstantValue(None, f"{value} (division by zero?)", 1)
    return InstantValue(value, None, 1)


class PrometheusClient:
    """One Prometheus server."""

    def __init__(self, url: str, *, timeout: int = DEFAULT_TIMEOUT, retries: int = 1, share_seconds: float = 0.0) -> None:
        self.url = url.rstrip("/")
        self._shared: SharedReads[InstantValue] = SharedReads(share_seconds)
        self.display_url = redact(self.url)
        self._timeout = timeout
        # Imported with the first client, not with the module: requests and the library cost every operator
        # process ~4 MB, and one whose ScalingPolicies are all paused never queries.
        from prometheus_api_client.prometheus_connect import PrometheusConnect  # noqa: PLC0415
        from urllib3.util.retry import Retry  # noqa: PLC0415

        retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.1,
                      status_forcelist=(502, 503, 504), allowed_methods=("GET",))
        self._conn = PrometheusConnect(url=self.url, disable_ssl=False, retry=retry, timeout=timeout)

    async def instant(self, query: str) -> InstantValue:
        """Evaluate `query` at the server's current time (or share an identical query's fresh answer)."""
        return await self._shared.read(query, lambda: self._query(query))

    async def _query(self, query: str) -> InstantValue:
        import requests  # noqa: PLC0415  (loaded by __init__ already; see there)
        from prometheus_api_client.exceptions import PrometheusApiClientException  # noqa: PLC0415

        try:
            result = await asyncio.to_thread(self._conn.custom_query, query)
        except requests.Timeout as exc:
            raise Timeout(f"Prometheus {self.display_url}: no answer within {self._timeout:.0f}s") from exc
        except requests.RequestException as exc:
            raise Unavailable(f"Prometheus {self.display_url} unreachable: {type(exc).__name__}") from exc
        except PrometheusApiClientException as exc:
            status, message = _error_text(exc)
            if status in (400, 422):
                raise Invalid(f"Prometheus rejected the query: {message}") from exc
            raise Unavailable(f"Prometheus {self.display_url} answered {status}: {message}") from exc
        except ValueError as exc:  # a non-JSON body (e.g. a proxy's HTML error page)
            raise Unavailable(f"Prometheus {self.display_url}: unreadable answer") from exc
        return interpret(result)

    def close(self) -> None:
        """Release the HTTP session."""
        self._conn.close()


class PrometheusPool:
    """Clients by URL, created on first use (policies may name different servers) and closed together."""

    def __init__(self, *, timeout: int = DEFAULT_TIMEOUT, share_seconds: float = 0.0) -> None:
        self._timeout = timeout
        self._share_seconds = share_seconds
        self._clients: dict[str, PrometheusClient] = {}

    def get(self, url: str) -> PrometheusClient:
        """The client for `url`."""
        key = url.rstrip("/")
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = PrometheusClient(key, timeout=self._timeout,
                                                                 share_seconds=self._share_seconds)
        return client

    def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
