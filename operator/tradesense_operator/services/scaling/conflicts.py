"""Who else scales this Deployment? Two autoscalers on one target fight; we refuse and say who the other is.

- any autoscaling/v2 HorizontalPodAutoscaler in the namespace whose scaleTargetRef names the Deployment;
- any other ScalingPolicy on the same Deployment: the OLDEST (creationTimestamp, then name) keeps acting,
  the others stand down — deterministic, so two operator replicas or restarts always agree.

Who scales a Deployment is configuration: the operator answers from its watch caches (clients.watch_cache:
one watch per namespace instead of two LISTs per evaluation); without caches (tests of one evaluation) it
lists.
Must not write anything: reporting the conflict is the evaluation's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import HPAS, SCALING_POLICIES, JsonDict, KubeClient, ResourceKind
from tradesense_operator.clients.watch_cache import WatchCache


def _targets(ref: Mapping[str, Any] | None, deployment: str) -> bool:
    ref = ref or {}
    return str(ref.get("kind", "Deployment")) == "Deployment" and ref.get("name") == deployment


def _age_key(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("creationTimestamp") or "9999"), str(meta.get("name") or "")


def conflicting_policy(me: Mapping[str, Any], policies: Sequence[Mapping[str, Any]], deployment: str) -> str | None:
    """The name of an older ScalingPolicy on the same Deployment, if any (pure, for table tests)."""
    my_name = (me.get("metadata") or {}).get("name")
    same = [p for p in policies if _targets((p.get("spec") or {}).get("targetRef"), deployment)]
    if not any((p.get("metadata") or {}).get("name") == my_name for p in same):
        same = [*same, me]
    winner = min(same, key=_age_key)
    winner_name = (winner.get("metadata") or {}).get("name")
    return None if winner_name == my_name else str(winner_name)


async def find_conflict(kube: KubeClient, me: Mapping[str, Any], namespace: str, deployment: str,
                        caches: Mapping[ResourceKind, WatchCache] | None = None) -> str | None:
    """A sentence naming the other autoscaler of `deployment`, or None when this policy may act."""

    async def listed(kind: ResourceKind) -> list[JsonDict]:
        cache = (caches or {}).get(kind)
        return await (cache.list(namespace) if cache is not None else kube.list(kind, namespace))

    try:
        hpas = await listed(HPAS)
    except NotFound:
        hpas = []  # autoscaling/v2 not served: no HPA can exist
    for hpa in hpas:
        if _targets((hpa.get("spec") or {}).get("scaleTargetRef"), deployment):
            name = (hpa.get("metadata") or {}).get("name")
            return f"HorizontalPodAutoscaler {namespace}/{name} also scales deployment {deployment}"
    policies = await listed(SCALING_POLICIES)
    other = conflicting_policy(me, policies, deployment)
    if other is not None:
        return f"ScalingPolicy {namespace}/{other} (older) already scales deployment {deployment}"
    return None
