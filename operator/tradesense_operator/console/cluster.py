"""The console's API adapter: the user's kubeconfig and context, reads, one patch verb, and a watch.

Owns the connection made with the user's own credentials (kubeconfig file, context, the context's
namespace), so the API server applies the user's RBAC, and a resumable watch of incidents that the tree
and the dashboard redraw on. It must not use the operator's identity (no in-cluster service account
fallback) and must not decide anything: refusals live in `console.actions`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from tradesense_operator.clients.errors import ClientError, Unavailable
from tradesense_operator.clients.kube import (
    BACKUP_POLICIES,
    INCIDENTS,
    SCALING_POLICIES,
    JsonDict,
    KubeClient,
    translate_status,
)
from tradesense_operator.console.actions import FIELD_MANAGER

WATCH_SECONDS = 300  # server-side timeout of one watch request; the stream then resumes from the last version


class KubeconfigError(Exception):
    """The kubeconfig cannot be used (missing file, unknown context); the message names which."""


def kubeconfig_path(explicit: str | None) -> str:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config (kubectl's order)."""
    if explicit:
        return explicit
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return first or str(Path("~/.kube/config").expanduser())


def context_namespace(path: str, context: str | None) -> str:
    """The namespace the chosen context names (kubectl's default for -n), or `default`."""
    if not Path(path).is_file():
        raise KubeconfigError(f"kubeconfig {path}: no such file (set --kubeconfig or KUBECONFIG)")
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=path)
    except (OSError, k8s_config.ConfigException) as exc:
        raise KubeconfigError(f"kubeconfig {path}: {exc}") from exc
    chosen = active if context is None else next((c for c in contexts if c.get("name") == context), None)
    if chosen is None:
        raise KubeconfigError(f"kubeconfig {path}: no context named {context!r}")
    return str((chosen.get("context") or {}).get("namespace") or "default")


class ConsoleCluster:
    """One user's session with the API server, scoped to one namespace."""

    def __init__(self, api_client: k8s_client.ApiClient, namespace: str) -> None:
        self._api = api_client
        self.kube = KubeClient(api_client)
        self.namespace = namespace

    @classmethod
    async def connect(cls, *, kubeconfig: str | None, context: str | None, namespace: str | None) -> ConsoleCluster:
        """Load the user's kubeconfig (never an in-cluster service account)."""
        path = kubeconfig_path(kubeconfig)
        chosen_namespace = namespace or context_namespace(path, context)
        configuration = k8s_client.Configuration()
        try:
            await k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        except (OSError, k8s_config.ConfigException) as exc:
            raise KubeconfigError(f"kubeconfig {path}: {exc}") from exc
        return cls(k8s_client.ApiClient(configuration), chosen_namespace)

    async def close(self) -> None:
        """Release the connection pool."""
        await self.kube.close()

    # -- reads -----------------------------------------------------------------------------------

    async def incidents(self) -> list[JsonDict]:
        """Every incident of the namespace."""
        return await self.kube.list(INCIDENTS, self.namespace)

    async def incident(self, name: str) -> JsonDict:
        """One incident; NotFound names it."""
        return await self.kube.get(INCIDENTS, name, self.namespace)

    async def backup_policies(self) -> list[JsonDict]:
        """Every BackupPolicy of the namespace."""
        return await self.kube.list(BACKUP_POLICIES, self.namespace)

    async def scaling_policies(self) -> list[JsonDict]:
        """Every ScalingPolicy of the namespace."""
        return await self.kube.list(SCALING_POLICIES, self.namespace)

    # -- the one write -----------------------------------------------------------------------------

    async def patch_incident(self, name: str, patch: Mapping[str, Any]) -> JsonDict:
        """One merge patch of the incident, recorded under the plugin's field manager."""
        return cast(JsonDict, await self.kube.request(
            "PATCH", INCIDENTS.path(self.namespace, name), query=[("fieldManager", FIELD_MANAGER)],
            body=dict(patch), content_type="application/merge-patch+json",
        ))

    # -- watch -------------------------------------------------------------------------------------

    async def watch_incidents(self, name: str | None = None) -> AsyncIterator[tuple[str, JsonDict]]:
        """("SNAPSHOT", {"items": [...]}) first, then ("ADDED"|"MODIFIED"|"DELETED", incident) as they happen.

        A watch that ends resumes from the last resourceVersion seen; one that is too old (410 Gone)
        starts over with a new snapshot, as client-go's reflector does.
        """
        selector = [("fieldSelector", f"metadata.name={name}")] if name else []
        while True:
            listing = await self.kube.request("GET", INCIDENTS.path(self.namespace), query=selector)
            yield "SNAPSHOT", {"items": listing.get("items") or []}
            version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
            while version:
                gone = False
                async for kind, obj in self._watch_once(selector, version):
                    if kind == "ERROR":
                        gone = True
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                    if kind != "BOOKMARK":
                        yield kind, obj
                if gone:
                    break

    async def _watch_once(self, selector: list[tuple[str, str]], version: str) -> AsyncIterator[tuple[str, JsonDict]]:
        query = [*selector, ("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        path = INCIDENTS.path(self.namespace)
        try:
            response = await self._api.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=WATCH_SECONDS + 30,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"watch {path}: {type(exc).__name__}: {exc}") from exc
        async with response:
            if response.status == 410:  # the version is too old: the same as a 410 ERROR event in the stream
                yield "ERROR", {}
                return
            if response.status != 200:
                raise translate_status(response.status, await response.read(), f"watch {path}")
            try:
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    yield str(event.get("type", "")), cast(JsonDict, event.get("object") or {})
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                return  # the stream broke mid-way: the caller resumes from the last resourceVersion it saw


__all__ = ["ClientError", "ConsoleCluster", "KubeconfigError", "context_namespace", "kubeconfig_path"]
