"""List and watch.

Covers: label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`) and the `metadata.name` field
selector on list and watch; a watch resumed from a resourceVersion replays exactly the later events
(no loss, no duplicates); BOOKMARK events with allowWatchBookmarks; `timeoutSeconds` ends the stream;
a resourceVersion older than the history gives 410 Gone (Expired) in the stream; labels that stop
matching arrive as DELETED for a selector watch; list pagination with limit/continue.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conformance.conftest import REAL_CLUSTER, Api, make_api
from tradesense_sandbox.kubeapi import EmulatedCluster

LABELLED = {
    "a": {"tier": "web", "env": "prod"},
    "b": {"tier": "db", "env": "prod"},
    "c": {"tier": "web"},
    "d": {"env": "dev"},
}


async def _seed(api: Api, ns: str) -> None:
    for name, labels in LABELLED.items():
        await api.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name, "labels": labels}})


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "c"]),
        ("tier==web", ["a", "c"]),
        ("tier!=web", ["b", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("env notin (prod)", ["c", "d"]),
        ("env", ["a", "b", "d"]),
        ("!env", ["c"]),
        ("tier=web,env=prod", ["a"]),
    ],
)
async def test_label_selectors_filter_lists(api: Api, ns: str, selector: str, expected: list[str]) -> None:
    await _seed(api, ns)
    listing = await api.ok("GET", f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": selector})
    assert sorted(item["metadata"]["name"] for item in listing["items"] if item["metadata"]["name"] in LABELLED) == expected


async def test_field_selector_on_metadata_name(api: Api, ns: str) -> None:
    await _seed(api, ns)
    listing = await api.ok("GET", f"/api/v1/namespaces/{ns}/configmaps", params={"fieldSelector": "metadata.name=b"})
    assert [item["metadata"]["name"] for item in listing["items"]] == ["b"]
    others = await api.ok("GET", f"/api/v1/namespaces/{ns}/configmaps", params={"fieldSelector": "metadata.name!=b"})
    assert "b" not in {item["metadata"]["name"] for item in others["items"]}


async def test_bad_label_selector_is_400(api: Api, ns: str) -> None:
    rsp = await api.get(f"/api/v1/namespaces/{ns}/configmaps", labelSelector="tier in web)")
    assert rsp.status == 400


async def test_watch_from_resource_version_replays_exactly_the_later_events(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await api.ok("POST", path, {"metadata": {"name": "before"}})
    listing = await api.ok("GET", path)
    since = listing["metadata"]["resourceVersion"]
    await api.ok("POST", path, {"metadata": {"name": "w1"}, "data": {"n": "1"}})
    await api.ok("PATCH", f"{path}/w1", {"data": {"n": "2"}}, content_type="application/merge-patch+json")
    await api.ok("DELETE", f"{path}/w1")
    events = await api.watch(path, resourceVersion=since, until=3, timeout=5)
    real = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
    assert real == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] != "BOOKMARK"]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3

    # Resuming from the middle yields the remainder only: no loss, no duplicates.
    middle = str(versions[0])
    resumed = await api.watch(path, resourceVersion=middle, until=2, timeout=5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in resumed if e["type"] != "BOOKMARK"] == [
        ("MODIFIED", "w1"),
        ("DELETED", "w1"),
    ]


async def test_watch_with_label_selector_sees_objects_leave_and_enter(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = await api.ok("POST", path, {"metadata": {"name": "mover", "labels": {"watched": "yes"}}})
    since = created["metadata"]["resourceVersion"]
    await api.ok("POST", path, {"metadata": {"name": "ignored", "labels": {"watched": "no"}}})
    await api.ok(
        "PATCH", f"{path}/mover", {"metadata": {"labels": {"watched": "no"}}}, content_type="application/merge-patch+json"
    )
    await api.ok(
        "PATCH", f"{path}/mover", {"metadata": {"labels": {"watched": "yes"}}}, content_type="application/merge-patch+json"
    )
    events = await api.watch(path, resourceVersion=since, labelSelector="watched=yes", until=2, timeout=5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"] == [
        ("DELETED", "mover"),
        ("ADDED", "mover"),
    ]


async def test_watch_with_field_selector_on_name(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listing = await api.ok("GET", path)
    await api.ok("POST", path, {"metadata": {"name": "other"}})
    await api.ok("POST", path, {"metadata": {"name": "target"}})
    events = await api.watch(
        path,
        resourceVersion=listing["metadata"]["resourceVersion"],
        fieldSelector="metadata.name=target",
        until=1,
        timeout=5,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"] == [("ADDED", "target")]


async def test_watch_without_resource_version_starts_with_the_current_state(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await api.ok("POST", path, {"metadata": {"name": "existing"}})
    events = await api.watch(path, until=1, timeout=5)
    assert ("ADDED", "existing") in [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def test_timeout_seconds_ends_the_stream(api: Api, ns: str) -> None:
    listing = await api.ok("GET", f"/api/v1/namespaces/{ns}/configmaps")
    started = time.monotonic()
    await api.watch(
        f"/api/v1/namespaces/{ns}/configmaps",
        resourceVersion=listing["metadata"]["resourceVersion"],
        timeoutSeconds="1",
        timeout=10,
    )
    assert time.monotonic() - started < 9  # the server closed it, not our 10 s client timeout


async def test_bookmarks_carry_a_resource_version_to_resume_from(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    # A real server sends bookmarks about once a minute; the emulator's interval is 1 s, hence emulator-only.
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listing = await api.ok("GET", path)
    events = await api.watch(
        path,
        resourceVersion=listing["metadata"]["resourceVersion"],
        allowWatchBookmarks="true",
        timeoutSeconds="2",
        timeout=5,
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(listing["metadata"]["resourceVersion"])


async def test_expired_resource_version_is_410_gone(fresh_kube_cluster: EmulatedCluster, tmp_path: Path) -> None:
    # A real server compacts on its own schedule; forcing compaction is an emulator control.
    if REAL_CLUSTER:
        pytest.skip("needs emulator-only history compaction")
    cluster = fresh_kube_cluster
    async with aiohttp.ClientSession() as session:
        api = await make_api(str(cluster.write_kubeconfig(tmp_path / "kc")), session)
        path = "/api/v1/namespaces/default/configmaps"
        first = await api.ok("POST", path, {"metadata": {"name": "old"}})
        await api.ok("POST", path, {"metadata": {"name": "new"}})
        cluster.store.compact()
        events = await api.watch(path, resourceVersion=first["metadata"]["resourceVersion"], timeout=5)
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [("ERROR", 410, "Expired")]


async def test_expire_watches_ends_open_streams_with_410(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listing = await api.ok("GET", path)
    watching = asyncio.create_task(api.watch(path, resourceVersion=listing["metadata"]["resourceVersion"], timeout=5))
    await asyncio.sleep(0.3)
    assert emulator.expire_watches() >= 1
    events = await watching
    assert events[-1]["type"] == "ERROR"
    assert events[-1]["object"]["code"] == 410


async def test_list_pagination_with_limit_and_continue(api: Api, ns: str) -> None:
    await _seed(api, ns)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    names: list[str] = []
    params = {"limit": "2"}
    for _ in range(10):
        page = await api.ok("GET", path, params=params)
        names.extend(item["metadata"]["name"] for item in page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "2", "continue": token}
    assert sorted(n for n in names if n in LABELLED) == ["a", "b", "c", "d"]
    assert len(names) == len(set(names))
