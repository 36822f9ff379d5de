"""Conformance fixtures: the same HTTP-level tests against the emulator (default) or a real cluster.

With `KUBECONFIG` set, `api` talks to that cluster (TLS and credentials as kubernetes_asyncio loads
them) and emulator-only tests skip with a reason; otherwise it talks to the shared `EmulatedCluster`
through a kubeconfig the emulator wrote — the same client code path either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from tradesense_sandbox.kubeapi import EmulatedCluster

REAL_CLUSTER = bool(os.environ.get("KUBECONFIG"))


@dataclass
class Response:
    status: int
    body: Any

    @property
    def reason(self) -> str:
        return str((self.body or {}).get("reason", "")) if isinstance(self.body, dict) else ""


class Api:
    """A thin JSON client over aiohttp: enough to exercise the API server exactly as written on the wire."""

    def __init__(
        self, session: aiohttp.ClientSession, host: str, headers: dict[str, str], ssl_context: ssl.SSLContext | bool
    ):
        self.session, self.host, self.headers, self.ssl = session, host.rstrip("/"), headers, ssl_context

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Response:
        headers = {**self.headers, "Content-Type": content_type, "Accept": "application/json"}
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method, self.host + path, data=data, headers=headers, params=params, ssl=self.ssl
        ) as rsp:
            text = await rsp.text()
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Response(rsp.status, parsed)

    async def get(self, path: str, **params: str) -> Response:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any) -> Response:
        return await self.request("POST", path, body)

    async def put(self, path: str, body: Any) -> Response:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: Any, content_type: str = "application/merge-patch+json") -> Response:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, body: Any = None) -> Response:
        return await self.request("DELETE", path, body)

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        if method == "PATCH":
            kwargs.setdefault("content_type", "application/merge-patch+json")
        rsp = await self.request(method, path, body, **kwargs)
        assert rsp.status < 300, f"{method} {path} → {rsp.status}: {rsp.body}"
        return rsp.body

    async def watch(
        self, path: str, *, timeout: float = 5.0, until: int | None = None, **params: str
    ) -> list[dict[str, Any]]:
        """Collect watch events until `until` non-bookmark events arrived, the server ends the stream, or `timeout`."""
        events: list[dict[str, Any]] = []
        query = {"watch": "true", **params}

        async def read() -> None:
            async with self.session.get(self.host + path, params=query, headers=self.headers, ssl=self.ssl) as rsp:
                assert rsp.status == 200, await rsp.text()
                async for line in rsp.content:
                    if not line.strip():
                        continue
                    events.append(json.loads(line))
                    if until is not None and sum(1 for e in events if e["type"] != "BOOKMARK") >= until:
                        return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), timeout)
        return events


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns something truthy (assertion errors are retried)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s") from last


async def _configuration(kubeconfig: str) -> Configuration:
    configuration = Configuration()
    await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


def _ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    if not configuration.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> EmulatedCluster:
    """The emulated cluster; tests using it need emulator-only controls and skip on a real cluster."""
    if REAL_CLUSTER:
        pytest.skip("needs emulator-only controls (kubelet timing, fault injection, history compaction)")
    cluster: EmulatedCluster = request.getfixturevalue("kube_cluster")
    return cluster


@pytest.fixture
def conformance_kubeconfig(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if REAL_CLUSTER:
        return os.environ["KUBECONFIG"]
    cluster: EmulatedCluster = request.getfixturevalue("kube_cluster")
    return str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))


async def make_api(kubeconfig: str, session: aiohttp.ClientSession) -> Api:
    configuration = await _configuration(kubeconfig)
    headers = {}
    token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    if token:
        headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
    return Api(session, configuration.host, headers, _ssl_context(configuration))


@pytest.fixture
async def api(conformance_kubeconfig: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield await make_api(conformance_kubeconfig, session)


@pytest.fixture
async def ns(api: Api) -> AsyncIterator[str]:
    """A fresh namespace for one test, created and deleted through the API."""
    name = f"conf-{secrets.token_hex(4)}"
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    await api.delete(f"/api/v1/namespaces/{name}")


def deployment(
    name: str, *, replicas: int = 2, image: str = "registry.example/app:1", env: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
    if env:
        container["env"] = env
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container, {"name": "sidecar", "image": "registry.example/side:1"}]},
            },
        },
    }


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{secrets.token_hex(3)}"
