"""Wait for the operator's CRDs to be Established before kopf starts watching them.

Right after `kubectl apply -k deploy/` the API server may still be initialising the new types' storage
(discovery lags, the first list answers 404/429/503), and kopf started at that moment logs an ERROR for what
is a normal, transient state of a fresh install. So the operator first waits, logging at INFO, until every
CRD it serves reports condition Established=True; after `timeout` it logs one WARNING naming the ones still
not Established and starts anyway (kopf then retries and reports on its own). Owns only this wait: it never
creates or changes CRDs (that is the install's job, deploy/crds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.kube import (
    BACKUP_POLICIES,
    INCIDENTS,
    SCALING_POLICIES,
    KubeClient,
    ResourceKind,
)

log = logging.getLogger(__name__)

CRDS = ResourceKind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions",
                    namespaced=False)
OPERATOR_CRDS = tuple(f"{kind.plural}.{kind.api_version.split('/')[0]}"
                      for kind in (INCIDENTS, BACKUP_POLICIES, SCALING_POLICIES))


async def _not_established(kube: KubeClient, names: Iterable[str]) -> dict[str, str]:
    """name → why it is not Established yet (missing, no condition, the condition's message)."""
    pending = {}
    for name in names:
        try:
            crd = await kube.get(CRDS, name)
        except NotFound:
            pending[name] = "not installed"
            continue
        except ClientError as exc:
            pending[name] = f"unreadable: {exc}"
            continue
        established = next((c for c in (crd.get("status") or {}).get("conditions") or []
                            if c.get("type") == "Established"), None)
        if established is None or established.get("status") != "True":
            pending[name] = str((established or {}).get("message") or "no Established condition yet")
    return pending


async def wait_until_established(
    kube: KubeClient,
    names: Iterable[str] = OPERATOR_CRDS,
    *,
    timeout: float = 60.0,
    poll: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> dict[str, str]:
    """Poll until every CRD is Established; returns those still not (empty when all are) after `timeout`."""
    wanted = list(names)
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        pending = await _not_established(kube, wanted)
        if not pending:
            if announced:
                log.info("CRDs Established: %s", ", ".join(wanted))
            return {}
        if time.monotonic() >= deadline:
            log.warning("starting although these CRDs are not Established after %.0fs: %s", timeout,
                        "; ".join(f"{n} ({why})" for n, why in sorted(pending.items())))
            return pending
        if not announced:
            log.info("waiting for CRDs to be Established before watching them: %s",
                     "; ".join(f"{n} ({why})" for n, why in sorted(pending.items())))
            announced = True
        await sleep(poll)
