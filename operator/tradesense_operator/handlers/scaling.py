"""kopf wiring for ScalingPolicy: one daemon per policy that evaluates it when it is due, and not otherwise.

Why a daemon and not a fixed timer: a 1 s timer on every policy costs a wake-up per policy per second and
a status write per polling interval even on a paused policy. The daemon (handlers.due_daemon) sleeps
until `next_evaluation` says the policy is due — pollingIntervalSeconds after the last evaluation on the
injected clock, or never for a paused or invalid policy whose status already says so — and is woken by
any watch event of the policy (an `on.event` handler: unlike `on.field`, it writes no diffbase annotation),
so an edit, a pause or a resume is acted on at once. Metric queries go through one process-wide
Prometheus pool that shares identical queries across policies (clients.prometheus).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.api.v1alpha1.scaling import PLURAL
from tradesense_operator.clients.errors import ClientError, Conflict, Unavailable
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.handlers.due_daemon import Acted, not_our_echo, serve, wake_on_event
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.scaling.conflicts import NamespaceLists
from tradesense_operator.services.scaling.evaluation import ScalingService, next_evaluation

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after a transient API failure (real time)
SHARE_QUERIES_SECONDS = 0.5  # identical reads (PromQL, a namespace's LISTs) within this long are asked once
#                              (half the shortest polling interval)


async def open_prometheus_pool(memo: kopf.Memo, **_: Any) -> None:
    """One pool of Prometheus clients and one set of shared namespace LISTs for the process (per-object memos
    are shallow copies of this one)."""
    if getattr(memo, "prometheus_pool", None) is None:
        memo.prometheus_pool = PrometheusPool(share_seconds=SHARE_QUERIES_SECONDS)
    if getattr(memo, "scaling_lists", None) is None:
        memo.scaling_lists = NamespaceLists(SHARE_QUERIES_SECONDS)


async def close_prometheus_pool(memo: kopf.Memo, **_: Any) -> None:
    """Close the Prometheus HTTP sessions."""
    pool = getattr(memo, "prometheus_pool", None)
    if isinstance(pool, PrometheusPool):
        pool.close()


async def evaluate_when_due(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Evaluate the policy each time it is due until the daemon stops; the service writes replicas, Events and
    status."""
    runtime: Runtime = memo.runtime
    service = ScalingService(runtime.kube, memo.prometheus_pool, runtime.clock, runtime.settings.prometheus_url,
                             metrics=runtime.metrics, lists=memo.scaling_lists)

    async def act(view: Mapping[str, Any]) -> Acted:
        meta = view.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            outcome = await service.evaluate(view)
        except (Unavailable, Conflict) as exc:
            log.info("ScalingPolicy %s: evaluation interrupted, retrying: %s", where, exc)
            return Acted(retry_in=RETRY_SECONDS)
        except ClientError as exc:
            # Not transient (e.g. Forbidden): say so and try again a polling interval later, like a timer would.
            log.warning("ScalingPolicy %s: evaluation failed: %s", where, exc)
            return Acted(retry_in=float((view.get("spec") or {}).get("pollingIntervalSeconds", 30)))
        if outcome.state == "Invalid":
            log.warning("ScalingPolicy %s not acted on: %s", where, outcome.message)
        elif outcome.state == "Scaled":
            log.info("ScalingPolicy %s scaled: %s", where, outcome.message)
        else:
            log.debug("ScalingPolicy %s %s: %s", where, outcome.state, outcome.message)
        return Acted(written=outcome.written)

    await serve(body, memo, stopped, clock=runtime.clock, due_at=next_evaluation, act=act)


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the ScalingPolicy handlers to `registry` (the default one on import; tests assemble their own)."""
    kopf.on.startup(registry=registry)(open_prometheus_pool)
    kopf.on.cleanup(registry=registry)(close_prometheus_pool)
    kopf.daemon(GROUP, VERSION, PLURAL, id="scaling-evaluation", registry=registry,
                cancellation_backoff=1.0, cancellation_timeout=5.0)(evaluate_when_due)
    kopf.on.event(GROUP, VERSION, PLURAL, id="scaling-wake", when=not_our_echo, registry=registry)(wake_on_event)


register(kopf.get_default_registry())
