"""Fixtures for the alert-bridge tests: the real aiohttp app from `build_app` on a loopback port, talking
to the emulated API server through a real KubeClient.

- `bridge_factory(**settings)` starts a bridge whose operator namespace and default incident namespace are
  the test's namespace, with a token Secret (a planted value) in it; settings override the defaults
  (e.g. `bridge_burst=2`). `bridge` is one with defaults and a generous rate limit.
- `operator_with_bridge` (from operator_harness): the whole operator, for tests that need the engine too.
- `Bridge.post(payload | bytes, auth=...)` sends one request and returns a `Reply` (status, JSON, headers);
  `Bridge.incidents()` lists the TradeSenseIncidents the cluster holds in the test namespace — what every
  "nothing was created" assertion reads; `Bridge.metric(name, **labels)` scrapes /metrics over HTTP.
- `alert(...)` / `notification(...)` build Alertmanager v4 payloads the way Alertmanager sends them.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.bridge.operator_harness import operator_with_bridge  # noqa: F401  (fixture)
from tests.support.secrets import SecretGuard
from tradesense_operator.bridge.server import TOKEN_KEY, build_app, secret_token_provider
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.config import Settings
from tradesense_operator.services.runtime import Runtime
from tradesense_sandbox.kubeapi import EmulatedCluster


@pytest.fixture
def rbac_operator_namespace(test_namespace: str) -> str:
    return test_namespace  # the bridge's operator namespace (token Secret, routes) is the test's, in deploy-rbac mode too


INCIDENT_API = "ops.tradesense.io/v1alpha1"
INCIDENT_KIND = "TradeSenseIncident"
TOKEN_SECRET = "tradesense-operator-bridge"
STARTS_AT = "2026-11-26T10:00:00.000Z"


def alert(
    alertname: str = "HighErrorRate",
    *,
    fingerprint: str = "d1a2b3c4d5e6f708",
    status: str = "firing",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    starts_at: str = STARTS_AT,
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook renders it."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "high", **(labels or {})},
        "annotations": {"summary": f"{alertname} fired", **(annotations or {})},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T10:05:00.000Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def notification(*alerts: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """A version-4 webhook body carrying `alerts`."""
    items = [dict(a) for a in alerts] or [alert()]
    overall = status or ("firing" if any(a["status"] == "firing" for a in items) else "resolved")
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + str(items[0]["labels"].get("alertname", "")) + '"}',
        "truncatedAlerts": 0,
        "status": overall,
        "receiver": "tradesense-operator",
        "groupLabels": {"alertname": items[0]["labels"].get("alertname", "")},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": items,
    }


@dataclass(frozen=True)
class Reply:
    """What the bridge answered."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]

    @property
    def outcomes(self) -> list[str]:
        return [a["outcome"] for a in self.body.get("alerts", [])]


@dataclass
class Bridge:
    """A running bridge and the cluster it writes to."""

    url: str
    token: str
    namespace: str
    cluster: EmulatedCluster
    runtime: Runtime
    session: aiohttp.ClientSession

    async def post(
        self,
        payload: Mapping[str, Any] | bytes | str,
        *,
        auth: str | None = "bearer",
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        path: str = "/alerts",
    ) -> Reply:
        """POST a payload (a dict is JSON-encoded, bytes/str go as they are). auth: bearer, basic or None."""
        data = json.dumps(payload).encode() if isinstance(payload, Mapping) else payload
        sent = {"Content-Type": "application/json", **(headers or {})}
        credential = self.token if token is None else token
        if auth == "bearer":
            sent["Authorization"] = f"Bearer {credential}"
        elif auth == "basic":
            sent["Authorization"] = "Basic " + base64.b64encode(f"alertmanager:{credential}".encode()).decode()
        async with self.session.post(self.url + path, data=data, headers=sent) as response:
            raw = await response.read()
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"raw": raw.decode(errors="replace")}
            return Reply(response.status, body if isinstance(body, dict) else {"raw": body}, dict(response.headers))

    def incidents(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every TradeSenseIncident the API server holds in the namespace (default: the test's)."""
        return self.cluster.list(INCIDENT_API, INCIDENT_KIND, namespace or self.namespace)

    def incident(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.cluster.get(INCIDENT_API, INCIDENT_KIND, name, namespace or self.namespace)

    async def metric(self, name: str, **labels: str) -> float:
        """A sample's value from GET /metrics (0 when the labelled child does not exist yet)."""
        async with self.session.get(self.url + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        return sample_value(text, name, **labels)


def sample_value(exposition: str, name: str, **labels: str) -> float:
    """The value of sample `name{labels}` in a Prometheus text exposition (0.0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


BridgeFactory = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def bridge_factory(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, secret_guard: SecretGuard
) -> AsyncIterator[BridgeFactory]:
    """`await make(with_secret=True, monotonic=None, **settings)`: a bridge served on a free loopback port.

    `monotonic` replaces the token cache's clock (token rotation tests step over the cache lifetime).
    """
    runners: list[web.AppRunner] = []
    runtimes: list[Runtime] = []
    sessions: list[aiohttp.ClientSession] = []
    token = secret_guard.plant(secrets.token_urlsafe(32))
    secret_guard.add_source(
        "incidents in the cluster",
        lambda: json.dumps(kube_cluster.list(INCIDENT_API, INCIDENT_KIND, test_namespace)),
    )

    async def make(
        *, with_secret: bool = True, monotonic: Callable[[], float] | None = None, **overrides: Any
    ) -> Bridge:
        if with_secret and kube_cluster.find("v1", "Secret", TOKEN_SECRET, test_namespace) is None:
            kube_cluster.create({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": TOKEN_SECRET, "namespace": test_namespace},
                "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
            })
        settings = Settings(**{
            "operator_namespace": test_namespace,
            "bridge_default_namespace": test_namespace,
            "bridge_rate_per_second": 1000.0,
            "bridge_burst": 1000,
            **overrides,
        })
        runtime = Runtime(kube=await KubeClient.from_kubeconfig(str(kubeconfig_path)), settings=settings)
        runtimes.append(runtime)
        provider = secret_token_provider(runtime, monotonic=monotonic) if monotonic else None
        runner = web.AppRunner(build_app(runtime, token_provider=provider), access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        sessions.append(session)
        return Bridge(f"http://127.0.0.1:{port}", token, test_namespace, kube_cluster, runtime, session)

    yield make
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()
    for runtime in runtimes:
        await runtime.aclose()


@pytest.fixture
async def bridge(bridge_factory: BridgeFactory) -> Bridge:
    """A bridge with default settings (and a rate limit too high to interfere)."""
    return await bridge_factory()


def names(items: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(i["metadata"]["name"]) for i in items)
