"""kopf wiring for ScalingPolicy: a short fixed timer tick; whether a policy is due is decided with the clock.

Why a 1 s timer and not a timer at pollingIntervalSeconds or a daemon: kopf fixes a timer's interval when
the handler is declared, but the interval is per object and editable. A daemon could sleep per object,
but a sleep cannot follow an injected ManualClock, so tests would have to wait in real time. A 1 s tick
costs one timestamp comparison per policy per second and keeps the due-decision (`is_due`) on the
injected clock: production behaves like a timer at pollingIntervalSeconds (±1 s), tests advance time.
"""

from __future__ import annotations

from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.api.v1alpha1.scaling import PLURAL
from tradesense_operator.clients.errors import ClientError, Conflict, Unavailable
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.scaling.evaluation import ScalingService, is_due

TICK_SECONDS = 1.0


@kopf.on.startup()
async def open_prometheus_pool(memo: kopf.Memo, **_: Any) -> None:
    """One pool of Prometheus clients for the process (per-object memos are shallow copies of this one)."""
    if getattr(memo, "prometheus_pool", None) is None:
        memo.prometheus_pool = PrometheusPool()


@kopf.on.cleanup()
async def close_prometheus_pool(memo: kopf.Memo, **_: Any) -> None:
    """Close the Prometheus HTTP sessions."""
    pool = getattr(memo, "prometheus_pool", None)
    if isinstance(pool, PrometheusPool):
        pool.close()


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, sharp=False)
async def evaluate_scaling_policy(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Evaluate the policy when it is due; the service writes replicas, Events and status."""
    runtime: Runtime = memo.runtime
    now = runtime.clock.now()
    if not is_due(body, now, getattr(memo, "scaling_last_evaluation", None)):
        return
    memo.scaling_last_evaluation = now
    service = ScalingService(runtime.kube, memo.prometheus_pool, runtime.clock, runtime.settings.prometheus_url,
                             runtime.metrics)
    try:
        outcome = await service.evaluate(body)
    except (Unavailable, Conflict) as exc:
        memo.scaling_last_evaluation = None  # retry at the next tick rather than a whole interval later
        raise kopf.TemporaryError(f"scaling evaluation interrupted: {exc}", delay=TICK_SECONDS) from exc
    except ClientError as exc:
        raise kopf.PermanentError(f"scaling evaluation failed: {exc}") from exc
    if outcome.state == "Invalid":
        logger.warning("ScalingPolicy not acted on: %s", outcome.message)
    elif outcome.state == "Scaled":
        logger.info("scaled: %s", outcome.message)
    else:
        logger.debug("%s: %s", outcome.state, outcome.message)
