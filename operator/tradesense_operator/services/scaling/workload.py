"""Reading and patching the scaled Deployment: WORKERS env and the memory limit of one container.

JSON patches (RFC 6902) with a `test` of the container's name: if the pod template changed between our
read and our write, the API server rejects the patch instead of editing the wrong container.
Must not decide the values it writes (domain.scaling) nor change replicas (evaluation does, via the scale subresource).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradesense_operator.clients.kube import DEPLOYMENTS, JsonDict, KubeClient


@dataclass(frozen=True)
class ContainerRef:
    """Where a container sits in the pod template."""

    index: int
    name: str
    body: Mapping[str, Any]


class ContainerMissing(LookupError):
    """The named container is not in the Deployment's pod template."""


def find_container(deployment: Mapping[str, Any], name: str | None) -> ContainerRef:
    """The named container, or the first one."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for index, container in enumerate(containers):
        if name is None or container.get("name") == name:
            return ContainerRef(index, str(container.get("name")), container)
    raise ContainerMissing(f"container {name or '(first)'} not found in the pod template")


def env_value(container: ContainerRef, env_name: str) -> str | None:
    """The literal value of an env var (None when unset or set from a reference)."""
    for item in container.body.get("env") or []:
        if item.get("name") == env_name:
            value = item.get("value")
            return None if value is None else str(value)
    return None


def memory_limit(container: ContainerRef) -> str | None:
    """resources.limits.memory, if set."""
    value = ((container.body.get("resources") or {}).get("limits") or {}).get("memory")
    return None if value is None else str(value)


def _base(container: ContainerRef) -> tuple[str, list[dict[str, Any]]]:
    path = f"/spec/template/spec/containers/{container.index}"
    return path, [{"op": "test", "path": f"{path}/name", "value": container.name}]


async def set_env(kube: KubeClient, target: tuple[str, str], container: ContainerRef, name: str, value: str
                  ) -> JsonDict:
    """Set one env var to a literal value (`kubectl set env deployment/x NAME=value`); target = (namespace, name).
    Returns the Deployment as the API server stored it."""
    path, ops = _base(container)
    env = list(container.body.get("env") or [])
    index = next((i for i, item in enumerate(env) if item.get("name") == name), None)
    if not env and "env" not in container.body:
        ops.append({"op": "add", "path": f"{path}/env", "value": [{"name": name, "value": value}]})
    elif index is None:
        ops.append({"op": "add", "path": f"{path}/env/-", "value": {"name": name, "value": value}})
    else:
        ops.append({"op": "replace", "path": f"{path}/env/{index}", "value": {"name": name, "value": value}})
    namespace, deployment = target
    return await kube.patch(DEPLOYMENTS, deployment, ops, namespace, patch_type="json")


async def set_memory_limit(
    kube: KubeClient, target: tuple[str, str], container: ContainerRef, limit: str, request: str | None = None
) -> JsonDict:
    """Set resources.limits.memory, and requests.memory when given (`kubectl set resources`), in one patch.
    Returns the Deployment as the API server stored it."""
    path, ops = _base(container)
    resources = container.body.get("resources")
    wanted = {"limits": limit, **({"requests": request} if request is not None else {})}
    if resources is None:
        ops.append({"op": "add", "path": f"{path}/resources",
                    "value": {section: {"memory": value} for section, value in wanted.items()}})
    else:
        for section, value in wanted.items():
            if section not in resources:
                ops.append({"op": "add", "path": f"{path}/resources/{section}", "value": {"memory": value}})
            else:  # JSON-patch add replaces an existing key
                ops.append({"op": "add", "path": f"{path}/resources/{section}/memory", "value": value})
    namespace, deployment = target
    return await kube.patch(DEPLOYMENTS, deployment, ops, namespace, patch_type="json")
