"""The Kubernetes client skips aiohttp's per-request netrc/proxy lookups unless the environment asks for them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiohttp import web
from kubernetes_asyncio import client as k8s_client

from tradesense_operator.clients.kube import KubeClient


@pytest.mark.parametrize(("env", "trusted"), [({}, False), ({"HTTPS_PROXY": "http://proxy.local:3128"}, True)])
async def test_environment_lookups_only_with_proxy_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], trusted: bool
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configuration = k8s_client.Configuration()
    configuration.host = "http://127.0.0.1:1"
    kube = KubeClient(k8s_client.ApiClient(configuration))
    try:
        assert kube._api.rest_client.pool_manager.trust_env is trusted
    finally:
        await kube.close()


async def test_requests_go_out_as_kubernetes_asyncio_would_send_them() -> None:
    """`KubeClient` sends on kubernetes_asyncio's session without `call_api`'s generic serialisation: the server
    must see the same method, path, query, auth and content headers and body bytes (a datetime in the body too)."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in _COMPARED}
        seen.append((request.method, request.path_qs, headers, await request.read()))
        return web.json_response({"kind": "Status", "metadata": {"resourceVersion": "7"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configuration = k8s_client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.api_key = {"BearerToken": "t0ken"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    kube = KubeClient(k8s_client.ApiClient(configuration))
    body = {"status": {"phase": "Running", "at": datetime(2026, 1, 5, 14, 30, tzinfo=UTC), "steps": [1, "two"]}}
    path = "/apis/ops.tradesense.io/v1alpha1/namespaces/ns/tradesenseincidents/inc/status"
    try:
        for method, sent in (("PATCH", body), ("GET", None), ("DELETE", None), ("POST", {"a": ["b"]})):
            query = [("fieldManager", "tradesense-operator"), ("labelSelector", "app=web,tier in (a b)")]
            await kube.request(method, path, query=query, body=sent, content_type="application/merge-patch+json")
            response = await kube._api.call_api(
                path, method, query_params=query,
                header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
                body=sent, auth_settings=["BearerToken"], _preload_content=False, _request_timeout=30.0)
            response.release()
            ours, theirs = seen[-2], seen[-1]
            assert ours == theirs
        assert seen[0][2]["Authorization"] == "Bearer t0ken"
        assert json.loads(seen[0][3]) == {"status": {"phase": "Running", "at": "2026-01-05T14:30:00+00:00",
                                                     "steps": [1, "two"]}}
    finally:
        await kube.close()
        await runner.cleanup()


_COMPARED = {"authorization", "content-type", "accept", "user-agent", "content-length"}
