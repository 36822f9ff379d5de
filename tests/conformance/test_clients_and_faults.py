"""kubernetes_asyncio against the server, and the emulator's fault injection and request accounting.

Covers: kubernetes_asyncio's typed APIs (core, apps incl. the scale subresource, custom objects with
an explicit merge-patch content type, watch) work with the kubeconfig; emulator-only: injected 429
with Retry-After and 500 answers for the next N matching requests, added latency, dropped watch
streams, and per-verb request counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from tests.conformance.conftest import Api
from tests.conformance.test_crds import GROUP, gauge, install_gauges
from tradesense_sandbox.kubeapi import EmulatedCluster


@pytest.fixture
async def k8s(conformance_kubeconfig: str) -> AsyncIterator[Any]:
    api_client = await config.new_client_from_config(config_file=conformance_kubeconfig)
    async with api_client:
        yield api_client


async def test_kubernetes_asyncio_core_and_apps_calls(k8s: Any, ns: str) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    names = [n.metadata.name for n in (await core.list_namespace()).items]
    assert ns in names
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "via-client"}, "data": {"k": "v"}})
    assert (await core.read_namespaced_config_map("via-client", ns)).data == {"k": "v"}
    body = {
        "metadata": {"name": "typed"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "typed"}},
            "template": {"metadata": {"labels": {"app": "typed"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        },
    }
    await apps.create_namespaced_deployment(ns, body)
    scale = await apps.patch_namespaced_deployment_scale("typed", ns, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2
    assert (await apps.read_namespaced_deployment("typed", ns)).spec.replicas == 2
    with pytest.raises(client.ApiException) as missing:
        await apps.read_namespaced_deployment("absent", ns)
    assert missing.value.status == 404


async def test_kubernetes_asyncio_custom_objects_and_watch(k8s: Any, ns: str, api: Api) -> None:
    await install_gauges(api)
    custom = client.CustomObjectsApi(k8s)
    await custom.create_namespaced_custom_object(GROUP, "v1", ns, "gauges", gauge("typed"))
    patched = await custom.patch_namespaced_custom_object(
        GROUP, "v1", ns, "gauges", "typed", {"spec": {"maxReplicas": 7}}, _content_type="application/merge-patch+json"
    )
    assert patched["spec"]["maxReplicas"] == 7
    listing = await custom.list_namespaced_custom_object(GROUP, "v1", ns, "gauges")
    events = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            "v1",
            ns,
            "gauges",
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=1,
        ):
            events.append(event)
            break
    assert events == [] or events[0]["type"] in ("ADDED", "MODIFIED")


async def test_injected_429_with_retry_after_then_recovery(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    emulator.inject_fault("GET", rf"/namespaces/{ns}/configmaps", status=429, times=2, retry_after=1)
    first = await api.get(f"/api/v1/namespaces/{ns}/configmaps")
    second = await api.get(f"/api/v1/namespaces/{ns}/configmaps")
    third = await api.get(f"/api/v1/namespaces/{ns}/configmaps")
    assert [first.status, second.status, third.status] == [429, 429, 200]
    assert first.reason == "TooManyRequests"


async def test_injected_500_only_hits_matching_requests(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    emulator.inject_fault("POST", rf"/namespaces/{ns}/secrets", status=500, times=1)
    assert (await api.get(f"/api/v1/namespaces/{ns}/secrets")).status == 200
    assert (await api.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"}})).status == 500
    assert (await api.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"}})).status == 201


async def test_injected_latency_delays_the_answer(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    emulator.inject_fault("GET", rf"/namespaces/{ns}/services", latency=0.3, times=1)
    started = time.monotonic()
    assert (await api.get(f"/api/v1/namespaces/{ns}/services")).status == 200
    assert time.monotonic() - started >= 0.3


async def test_dropped_watch_ends_the_stream(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listing = await api.ok("GET", path)
    started = time.monotonic()
    watching = asyncio.create_task(api.watch(path, resourceVersion=listing["metadata"]["resourceVersion"], timeout=10))
    await asyncio.sleep(0.3)
    assert emulator.drop_watches() >= 1
    events = await watching
    assert time.monotonic() - started < 5
    assert [e for e in events if e["type"] != "BOOKMARK"] == []


async def test_requests_are_counted_by_verb_and_resource(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    before = emulator.stats.total("create", "configmaps")
    await api.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "counted"}})
    await api.ok("GET", f"/api/v1/namespaces/{ns}/configmaps/counted")
    assert emulator.stats.total("create", "configmaps") == before + 1
    assert emulator.stats.total("get", "configmaps") >= 1


async def test_requests_without_the_token_are_401(emulator: EmulatedCluster) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/api/v1/namespaces") as rsp:
        assert rsp.status == 401
