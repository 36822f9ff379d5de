"""One ScalingPolicy evaluation with its side effects, in the order the runbook would do them by hand:

1. parse and check the spec (a bad field becomes a condition and a Warning Event, nothing else);
2. paused (`ops.tradesense.io/paused: "true"` on the policy) → no reads of metrics, no writes, condition;
3. read the Deployment (its spec.replicas is what the scale subresource reports) — from the watch cache
   when the operator runs one (clients.watch_cache), else with a GET;
4. refuse when an HPA or an older ScalingPolicy scales the same Deployment;
5. query every metric from Prometheus (concurrently); failures are readings with a reason;
6. decide (pure, domain.scaling.decision) with the incident floors from the Deployment's annotation;
7. a decision to change replicas is committed to the status first, guarded by the resourceVersion it was
   decided from (clients.status_writer): a concurrent writer makes it a Conflict, and the evaluation re-reads
   the policy and decides again from what that writer recorded — it never acts on a stale decision. A write
   sends only the top-level status fields that differ from the status stored at that resourceVersion;
8. write replicas through the scale subresource (`kubectl scale`), WORKERS env and the memory limit only
   when they change — WORKERS before adding replicas and after removing them, so replicas × WORKERS
   stays within the budget during the change;
9. Event with the reason (a SuccessfulRescale goes through the caller's `schedule_event` when given: the round
   loop posts them after its scale writes, which they would otherwise delay); status with the bounded histories
   and the HPA-style conditions — written only when it says something new (`_worth_writing`): a decision, a
   condition, replicas, a scale event, an error.
   What changes every round without changing the story (lastEvaluationTime, the metric values, the
   timestamps of repeated recommendations) is refreshed at most every STATUS_REFRESH_SECONDS; until then the
   caller keeps the computed status in memory and passes it back as `previous`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.common import Condition
from tradesense_operator.api.v1alpha1.scaling import (
    MetricStatus,
    ScalingPolicy,
    ScalingPolicySpec,
    ScalingPolicyStatus,
)
from tradesense_operator.clients.errors import ClientError, Conflict, NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, SCALING_POLICIES, JsonDict, KubeClient, ObjectRef, ResourceKind
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.clients.status_writer import write_status
from tradesense_operator.clients.watch_cache import WatchCache
from tradesense_operator.domain.clock import Clock
from tradesense_operator.domain.conditions import get_condition, set_condition
from tradesense_operator.domain.scaling.decision import ScalingDecision, ScalingInput, Verdict, decide
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec
from tradesense_operator.domain.scaling.floor import SCALE_FLOOR_ANNOTATION, ScaleFloor, parse_scale_floors
from tradesense_operator.domain.scaling.metrics import MetricReading
from tradesense_operator.domain.scaling.presets import metric_query
from tradesense_operator.domain.scaling.validation import validate_spec
from tradesense_operator.domain.scaling.vertical import parse_bytes, recommend_memory_limit
from tradesense_operator.observability.metrics import OperatorMetrics
from tradesense_operator.services.scaling.conflicts import find_conflict
from tradesense_operator.services.scaling.workload import (
    ContainerMissing,
    env_value,
    find_container,
    memory_limit,
    set_env,
    set_memory_limit,
)

log = logging.getLogger(__name__)

PAUSED_ANNOTATION = "ops.tradesense.io/paused"
CONDITION_TYPES = ("AbleToScale", "ScalingActive", "ScalingLimited", "FallbackActive")
STATUS_REFRESH_SECONDS = 60.0  # lastEvaluationTime and metric values are at most this old when nothing else changed
CONFLICT_ATTEMPTS = 3  # status writes refused with Conflict: re-read and decide again this many times


PARSED_REMEMBERED = 10_000  # policies whose parsed spec/status are kept (forgotten all at once beyond)


@dataclass(frozen=True)
class _Parsed:
    """A policy body's spec (or why it is invalid) and stored status, for one resourceVersion."""

    version: str | None
    spec: ScalingPolicySpec | ValidationError | InvalidScalingSpec
    status: ScalingPolicyStatus


class _Stale(Exception):
    """The policy changed since the body this evaluation decided from (a status write got Conflict)."""


@dataclass(frozen=True)
class Outcome:
    """What one evaluation did, for the handler's log line and for tests."""

    state: Literal["Scaled", "Unchanged", "Paused", "Conflict", "Invalid", "TargetMissing"]
    message: str
    decision: ScalingDecision | None = None
    written: Mapping[str, Any] | None = None
    """The policy as the API server returned it after this evaluation's last status write (None: not written)."""
    status: ScalingPolicyStatus | None = None
    """The status this evaluation computed, written or not: the caller's `previous` for the next one."""
    decided_from: Mapping[str, Any] | None = None
    """The policy body the evaluation decided from (after a Conflict: the one it re-read)."""


@dataclass
class _Context:
    """One evaluation's inputs, shared by its steps."""

    body: Mapping[str, Any]
    namespace: str
    status: ScalingPolicyStatus
    """What the previous evaluation computed (histories the decision builds on)."""
    stored: ScalingPolicyStatus
    """What the API server holds (the last status written): what a write would change."""
    now: datetime
    generation: int | None
    notes: list[str]
    resource_version: str | None = None
    stored_wire: Mapping[str, Any] | None = None
    """The status the API server holds at resource_version, as it returned it (a write sends what differs)."""
    written: Mapping[str, Any] | None = None
    computed: ScalingPolicyStatus | None = None


def field_of(error: ValidationError) -> str:
    """JSON path of the first pydantic error, e.g. spec.metrics[0].target.value."""
    loc = error.errors()[0]["loc"] if error.errors() else ()
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "spec"


def is_paused(body: Mapping[str, Any]) -> bool:
    """The policy carries ops.tradesense.io/paused: "true"."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"


def next_evaluation(body: Mapping[str, Any], now: datetime, last_evaluated: datetime | None = None
                    ) -> datetime | None:
    """When the policy is next due (a time <= now: at once; None: not until the policy is edited).

    Due at once: never evaluated, a spec change not yet observed (new generation), or a pause/resume the
    status does not show yet. Not due until edited: paused or invalid, and the status already says so
    for this generation — nothing but an edit of the policy can change that, and an edit is a watch
    event. Otherwise pollingIntervalSeconds after the last evaluation: `last_evaluated` as the caller
    remembers it (the status is not written every round), else the status' lastEvaluationTime.
    """
    spec = body.get("spec") or {}
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or (meta.get("generation") is not None and observed != meta.get("generation")):
        return now
    shown = next((c.get("reason") for c in status.get("conditions") or [] if c.get("type") == "AbleToScale"), None)
    if is_paused(body):
        return None if shown == "Paused" else now
    if shown == "Paused":
        return now  # resumed
    if shown == "InvalidSpec":
        return None
    last_text = status.get("lastEvaluationTime")
    if last_evaluated is not None:
        last = last_evaluated
    elif isinstance(last_text, str):
        last = datetime.fromisoformat(last_text.replace("Z", "+00:00"))
    else:
        return now
    return last + timedelta(seconds=float(spec.get("pollingIntervalSeconds", 30)))


class ScalingService:
    """Evaluates ScalingPolicies against the Kubernetes API and Prometheus."""

    def __init__(self, kube: KubeClient, prometheus: PrometheusPool, clock: Clock, default_prometheus_url: str, *,
                 metrics: OperatorMetrics | None = None, caches: Mapping[ResourceKind, WatchCache] | None = None,
                 schedule_event: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None) -> None:
        self.kube = kube
        self.schedule_event = schedule_event
        """Posts a SuccessfulRescale Event now or later, as the caller's round allows (None: now)."""
        self.caches = dict(caches or {})
        self._parse_memo: dict[tuple[str, str], _Parsed] = {}
        self.prometheus = prometheus
        self.clock = clock
        self.default_prometheus_url = default_prometheus_url
        self.metrics = metrics

    # -- entry point ---------------------------------------------------------------------------

    async def evaluate(self, body: Mapping[str, Any], previous: ScalingPolicyStatus | None = None) -> Outcome:
        """Evaluate one policy (the body as the API server returned it, and the status the previous evaluation
        computed from that same body if the caller kept it); counts the outcome in /metrics.

        A status write refused with Conflict means someone else wrote the policy since `body`: re-read it and
        decide again from what they recorded (CONFLICT_ATTEMPTS times, then Conflict)."""
        meta = body.get("metadata") or {}
        labels = (str(meta.get("namespace")), str(meta.get("name")))
        try:
            for _ in range(CONFLICT_ATTEMPTS):
                stored = self._parsed(body).status
                ctx = _Context(body=body, namespace=str(meta.get("namespace")), status=previous or stored,
                               stored=stored, now=self.clock.now(), generation=(body.get("metadata") or {}).get(
                                   "generation"), notes=[],
                               resource_version=(body.get("metadata") or {}).get("resourceVersion"),
                               stored_wire=body.get("status") or {})
                try:
                    outcome = await self._evaluate(ctx)
                except _Stale:
                    log.info("ScalingPolicy %s/%s changed while it was evaluated; deciding again", *labels)
                    body, previous = await self.kube.get(SCALING_POLICIES, labels[1], labels[0]), None
                    continue
                outcome = replace(outcome, written=ctx.written, status=ctx.computed, decided_from=body)
                break
            else:
                raise Conflict(f"ScalingPolicy {labels[0]}/{labels[1]}: status kept changing while it was evaluated")
        except ClientError:
            if self.metrics is not None:
                self.metrics.scaling_evaluations.labels(*labels, "Error").inc()
            raise
        if self.metrics is not None:
            self.metrics.scaling_evaluations.labels(*labels, outcome.state).inc()
            if outcome.decision is not None:
                self.metrics.scaling_desired.labels(*labels).set(outcome.decision.desired_replicas)
        return outcome

    async def _evaluate(self, ctx: _Context) -> Outcome:
        body = ctx.body
        parsed = self._parsed(body).spec
        if isinstance(parsed, ValidationError):
            return await self._invalid(ctx, field_of(parsed), parsed.errors()[0]["msg"])
        if isinstance(parsed, InvalidScalingSpec):
            return await self._invalid(ctx, parsed.field, parsed.message)
        spec = parsed
        deployment_name = spec.target_ref.name

        if is_paused(body):
            message = f"{PAUSED_ANNOTATION} is true: not reading metrics, not scaling"
            await self._stand_down(ctx, "Paused", message)
            return Outcome("Paused", message)

        try:
            deployment = await self._read(DEPLOYMENTS, ctx.namespace, deployment_name)
        except NotFound:
            message = f"deployment {ctx.namespace}/{deployment_name} not found"
            await self._stand_down(ctx, "FailedGetScale", message, warn=True)
            return Outcome("TargetMissing", message)

        conflict = await find_conflict(self.kube, body, ctx.namespace, deployment_name, self.caches)
        if conflict is not None:
            await self._stand_down(ctx, "ConflictingAutoscaler", conflict, warn=True)
            return Outcome("Conflict", conflict)

        # spec.replicas is what the scale subresource reports for a Deployment; one GET instead of two
        current = int((deployment.get("spec") or {}).get("replicas") or 0)
        floors = self._floors(deployment, ctx.notes)
        readings = await self._read_metrics(spec)
        decision = decide(ScalingInput(
            spec=spec, current_replicas=current, readings=readings, now=ctx.now,
            recommendations=ctx.status.recommendations, scale_events=ctx.status.scale_events,
            consecutive_failures=ctx.status.consecutive_failures, floors=floors,
        ))
        if decision.changed:  # commit the decision before acting on it (a Conflict: decide again)
            await self._commit(ctx, self._decided_status(ctx, spec, decision), force=True)
        await self._apply(ctx, spec, deployment, decision)
        await self._write_status(ctx, spec, decision)
        return Outcome("Scaled" if decision.changed else "Unchanged", decision.reason, decision)

    # -- steps ---------------------------------------------------------------------------------

    async def _read(self, kind: ResourceKind, namespace: str, name: str) -> JsonDict:
        cache = self.caches.get(kind)
        return await (cache.get(namespace, name) if cache is not None else self.kube.get(kind, name, namespace))

    def _remember(self, body: Mapping[str, Any]) -> None:
        cache = self.caches.get(DEPLOYMENTS)
        if cache is not None and body:
            cache.remember(body)

    def _parsed(self, body: Mapping[str, Any]) -> _Parsed:
        """The body's spec and status as models, parsed once per resourceVersion (a policy evaluated every
        second is unchanged almost every time; parsing was a good part of an evaluation's CPU)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        version = meta.get("resourceVersion")
        known = self._parse_memo.get(key)
        if known is not None and version is not None and known.version == version:
            return known
        spec: ScalingPolicySpec | ValidationError | InvalidScalingSpec
        try:
            spec = ScalingPolicy.model_validate({k: v for k, v in body.items() if k in ("apiVersion", "kind", "spec")}
                                                ).spec
            validate_spec(spec)
        except (ValidationError, InvalidScalingSpec) as exc:
            spec = exc
        try:
            status = ScalingPolicyStatus.model_validate(body.get("status") or {})
        except ValidationError:
            log.warning("ignoring an unreadable ScalingPolicy status; history starts afresh")
            status = ScalingPolicyStatus()
        if len(self._parse_memo) >= PARSED_REMEMBERED:
            self._parse_memo.clear()
        parsed = self._parse_memo[key] = _Parsed(None if version is None else str(version), spec, status)
        return parsed

    @staticmethod
    def _floors(deployment: Mapping[str, Any], notes: list[str]) -> list[ScaleFloor]:
        text = ((deployment.get("metadata") or {}).get("annotations") or {}).get(SCALE_FLOOR_ANNOTATION)
        if not text:
            return []
        try:
            return parse_scale_floors(str(text))
        except ValueError as exc:
            notes.append(f"ignored a malformed incident floor: {exc}")
            return []

    async def _read_metrics(self, spec: ScalingPolicySpec) -> dict[str, MetricReading]:
        client = self.prometheus.get(spec.prometheus_url or self.default_prometheus_url)

        async def one(query: str) -> MetricReading:
            try:
                result = await client.instant(query)
            except ClientError as exc:
                return MetricReading(None, str(exc))
            if result.value is None:
                return MetricReading(None, result.problem or "no value")
            return MetricReading(result.value)

        queries = [metric_query(m, f"spec.metrics[{i}]") for i, m in enumerate(spec.metrics)]
        readings = await asyncio.gather(*(one(q) for q in queries))
        return {m.name: r for m, r in zip(spec.metrics, readings, strict=True)}

    async def _apply(self, ctx: _Context, spec: ScalingPolicySpec, deployment: Mapping[str, Any],
                     decision: ScalingDecision) -> None:
        """Write replicas; WORKERS and the memory limit are secondary: their failures become notes, so the
        status (with the scale event the rate policies need) is still written after a replica change."""
        scaling_up = decision.desired_replicas > decision.current_replicas
        if scaling_up:
            await self._secondary(ctx, "workers", self._apply_workers(ctx, spec, deployment, decision))
        if decision.changed:
            try:
                scale = await self.kube.set_replicas(ctx.namespace, spec.target_ref.name, decision.desired_replicas)
            except ClientError as exc:
                await self._retract(ctx, exc)
                raise
            # the cache shows our write until the watch does (never decide again from the old count)
            self._remember({**deployment, "metadata": {**(deployment.get("metadata") or {}), "resourceVersion":
                            (scale.get("metadata") or {}).get("resourceVersion")},
                            "spec": {**(deployment.get("spec") or {}), "replicas": decision.desired_replicas}})
            message = f"New size: {decision.desired_replicas}; reason: {decision.reason}"
            if self.schedule_event is None:
                await self._event(ctx, "Normal", "SuccessfulRescale", message)
            else:  # on no policy's path to its replicas changing: the round may post it after its scale writes
                await self.schedule_event(lambda: self._event(ctx, "Normal", "SuccessfulRescale", message))
        if not scaling_up:
            await self._secondary(ctx, "workers", self._apply_workers(ctx, spec, deployment, decision))
        await self._secondary(ctx, "vertical", self._apply_vertical(ctx, spec, deployment))

    async def _secondary(self, ctx: _Context, what: str, step: Coroutine[Any, Any, None]) -> None:
        try:
            await step
        except ClientError as exc:
            ctx.notes.append(f"{what}: not applied: {exc}")
            await self._event(ctx, "Warning", "SecondaryChangeFailed", f"{what}: {exc}")

    async def _apply_workers(self, ctx: _Context, spec: ScalingPolicySpec, deployment: Mapping[str, Any],
                             decision: ScalingDecision) -> None:
        if spec.workers is None or decision.workers is None:
            return
        try:
            container = find_container(deployment, spec.workers.container)
        except ContainerMissing as exc:
            ctx.notes.append(f"workers: {exc}")
            return
        wanted = str(decision.workers)
        if env_value(container, spec.workers.env_name) != wanted:
            self._remember(await set_env(self.kube, (ctx.namespace, spec.target_ref.name), container,
                                         spec.workers.env_name, wanted))
            ctx.notes.append(f"{spec.workers.env_name}={wanted} per pod for {decision.desired_replicas} replicas")
            await self._event(ctx, "Normal", "WorkersChanged",
                              f"{spec.workers.env_name}={wanted} per pod for {decision.desired_replicas} replicas "
                              f"(budget {spec.workers.total_budget})")

    async def _apply_vertical(self, ctx: _Context, spec: ScalingPolicySpec, deployment: Mapping[str, Any]) -> None:
        notes = ctx.notes
        vertical = spec.vertical
        if vertical is None:
            return
        try:
            container = find_container(deployment, vertical.container)
        except ContainerMissing as exc:
            notes.append(f"vertical: {exc}")
            return
        client = self.prometheus.get(spec.prometheus_url or self.default_prometheus_url)
        try:
            usage = await client.instant(vertical.memory_query)
        except ClientError as exc:
            notes.append(f"vertical: memory query failed: {exc}")
            return
        if usage.value is None:
            notes.append(f"vertical: memory query unusable: {usage.problem}")
            return
        current = memory_limit(container)
        recommendation = recommend_memory_limit(vertical, usage.value, current)
        if recommendation is None:
            return
        request = ((container.body.get("resources") or {}).get("requests") or {}).get("memory")
        if recommendation.request is None and request is not None and parse_bytes(str(request)) > recommendation.limit_bytes:
            notes.append(f"vertical: memory request {request} exceeds the recommended limit; not changed")
            return
        self._remember(await set_memory_limit(self.kube, (ctx.namespace, spec.target_ref.name), container,
                                              recommendation.limit, recommendation.request))
        await self._event(ctx, "Normal", "VerticalRescale", recommendation.reason)
        notes.append(recommendation.reason)

    # -- status, conditions, events ------------------------------------------------------------

    async def _event(self, ctx: _Context, type_: str, reason: str, message: str) -> None:
        try:
            await self.kube.create_event(ObjectRef.from_body(ctx.body),
                                         type_="Warning" if type_ == "Warning" else "Normal",
                                         reason=reason, message=message, now=ctx.now)
        except ClientError as exc:  # an Event is a courtesy; never fail the evaluation for it
            log.warning("could not record event %s: %s", reason, exc)

    async def _commit(self, ctx: _Context, status: ScalingPolicyStatus, *, force: bool = False) -> None:
        """Keep `status` as the computed one; write it when it says something new, the stored one is older than
        STATUS_REFRESH_SECONDS, or `force`. The write carries the resourceVersion decided from: _Stale on Conflict."""
        ctx.computed = status
        if not (force or _worth_writing(ctx.stored, status, ctx.now)):
            return
        meta = ctx.body.get("metadata") or {}
        try:
            written = await write_status(self.kube, SCALING_POLICIES, ctx.namespace, str(meta.get("name")), status,
                                         resource_version=ctx.resource_version, stored=ctx.stored_wire)
        except Conflict as exc:
            raise _Stale from exc
        ctx.written, ctx.stored, ctx.stored_wire = written, status, written.get("status") or {}
        ctx.resource_version = (written.get("metadata") or {}).get("resourceVersion")

    @staticmethod
    def _conditions(old: Sequence[Condition], verdicts: Mapping[str, Verdict], now: datetime,
                    generation: int | None) -> list[Condition]:
        conditions = list(old)
        for type_, verdict in verdicts.items():
            conditions = set_condition(conditions, type_=type_, status=verdict.status, reason=verdict.reason,
                                       message=verdict.message, now=now, observed_generation=generation)
        return conditions

    async def _retract(self, ctx: _Context, error: ClientError) -> None:
        """The committed scale was not applied: say so, and drop its scale event (it would hold back the next
        scale under the rate policies). Best effort: the evaluation fails with `error` either way."""
        committed = ctx.stored
        conditions = self._conditions(committed.conditions, {
            "AbleToScale": Verdict(False, "FailedUpdateScale", f"the replica count could not be written: {error}"),
        }, ctx.now, ctx.generation)
        retracted = committed.model_copy(update={
            "conditions": conditions, "desired_replicas": committed.current_replicas,
            "scale_events": list(ctx.status.scale_events), "last_scale_time": ctx.status.last_scale_time})
        try:
            await self._commit(ctx, retracted, force=True)
        except (_Stale, ClientError) as exc:
            log.warning("could not record the failed rescale of %s: %s", ctx.body.get("metadata", {}).get("name"), exc)

    async def _stand_down(self, ctx: _Context, reason: str, message: str, *, warn: bool = False) -> None:
        """No scaling this time: AbleToScale and ScalingActive False with the reason; Event on the transition."""
        previous = get_condition(ctx.status.conditions, "AbleToScale")
        conditions = self._conditions(ctx.status.conditions, {
            "AbleToScale": Verdict(False, reason, message),
            "ScalingActive": Verdict(False, reason, message),
        }, ctx.now, ctx.generation)
        updated = ctx.status.model_copy(update={"conditions": conditions, "last_evaluation_time": ctx.now,
                                                "observed_generation": ctx.generation})
        await self._commit(ctx, updated)
        if previous is None or previous.reason != reason or previous.message != message:
            await self._event(ctx, "Warning" if warn else "Normal", reason, message)

    async def _invalid(self, ctx: _Context, field: str, message: str) -> Outcome:
        text = f"invalid {field}: {message}"
        await self._stand_down(ctx, "InvalidSpec", text, warn=True)
        return Outcome("Invalid", text)

    async def _write_status(self, ctx: _Context, spec: ScalingPolicySpec, decision: ScalingDecision) -> None:
        previous_fallback = get_condition(ctx.status.conditions, "FallbackActive")
        await self._commit(ctx, self._decided_status(ctx, spec, decision))
        was_active = previous_fallback is not None and previous_fallback.status.value == "True"
        if decision.fallback_active.status and not was_active:
            await self._event(ctx, "Warning", "FallbackActive", decision.fallback_active.message)
        elif not decision.fallback_active.status and was_active:
            await self._event(ctx, "Normal", "MetricsRecovered", "metrics readable again; fallback ended")

    def _decided_status(self, ctx: _Context, spec: ScalingPolicySpec, decision: ScalingDecision
                        ) -> ScalingPolicyStatus:
        old = ctx.status
        limited = decision.scaling_limited
        if ctx.notes:
            limited = Verdict(limited.status, limited.reason, "; ".join([limited.message, *ctx.notes]))
        conditions = self._conditions(old.conditions, {
            "AbleToScale": decision.able_to_scale,
            "ScalingActive": decision.scaling_active,
            "ScalingLimited": limited,
            "FallbackActive": decision.fallback_active,
        }, ctx.now, ctx.generation)
        by_name = {m.name: m for m in spec.metrics}
        return ScalingPolicyStatus(
            current_replicas=decision.current_replicas,
            desired_replicas=decision.desired_replicas,
            last_scale_time=ctx.now if decision.changed else old.last_scale_time,
            last_evaluation_time=ctx.now,
            current_metrics=[
                MetricStatus(name=m.name, value=m.value, target=by_name[m.name].target.value,
                             recommendation=m.replicas, error=m.error)
                for m in decision.metrics
            ],
            recommendations=list(decision.recommendations),
            scale_events=list(decision.scale_events),
            consecutive_failures=decision.consecutive_failures,
            observed_generation=ctx.generation,
            conditions=conditions,
        )


def _story(status: ScalingPolicyStatus) -> tuple[Any, ...]:
    """What a reader of the status learns from it, without what moves every round anyway (the evaluation time,
    the metric values, the timestamps of recommendations that repeat the same replica counts). Compared as
    models, not serialised: this runs for every policy every round."""
    return (status.current_replicas, status.desired_replicas, status.last_scale_time,
            [(m.name, m.target, m.recommendation, m.error) for m in status.current_metrics],
            [r.replicas for r in status.recommendations], status.scale_events, status.consecutive_failures,
            status.observed_generation, status.conditions)


def _worth_writing(stored: ScalingPolicyStatus, status: ScalingPolicyStatus, now: datetime) -> bool:
    """Whether `status` tells a reader something `stored` does not, or `stored` is due for its refresh."""
    if stored.last_evaluation_time is None or _story(stored) != _story(status):
        return True
    return (now - stored.last_evaluation_time).total_seconds() >= STATUS_REFRESH_SECONDS
