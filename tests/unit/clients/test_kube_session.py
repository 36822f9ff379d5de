"""The Kubernetes client skips aiohttp's per-request netrc/proxy lookups unless the environment asks for them."""

from __future__ import annotations

import pytest
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
