"""Deployment actions: `kubectl rollout restart|undo|status`, `kubectl scale`, `kubectl set env|resources`.

Each one writes what kubectl writes, so an operator and a human following the runbook leave the same
traces, plus the step's stamp (`ops.tradesense.io/applied-by`) in the pod template where the change is a
template change: a resumed step that finds its stamp or its value in place reports ALREADY_DONE.
Must not decide whether a step runs or is approved (the engine does) nor own the floor's format
(domain.scaling.floor).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import Conflict, NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, PODS, REPLICASETS, JsonDict
from tradesense_operator.domain.scaling.floor import SCALE_FLOOR_ANNOTATION, ScaleFloor, merge_floor
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.pod_state import can_become_ready, described, is_ready
from tradesense_operator.services.step_adapters.step_inputs import (
    param_bool,
    param_int,
    param_str,
    require_int,
    require_str,
    target_name,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"


async def get_deployment(ctx: StepContext, *, cached: bool = False) -> tuple[str, JsonDict]:
    """The step's target Deployment; StepFailed naming it when it does not exist.

    `cached` reads the process's Deployment watch cache: for `describe` (a dry run says what it would
    change; a watch's latency is no error there). A `run` decides what to change, so it reads fresh.
    """
    name = target_name(ctx.step, "deployment")
    try:
        if cached:
            return name, await ctx.runtime.watch_cache(DEPLOYMENTS).get(ctx.namespace, name)
        return name, await ctx.runtime.kube.get(DEPLOYMENTS, name, ctx.namespace)
    except NotFound as exc:
        raise StepFailed(f"deployment/{name} not found in namespace {ctx.namespace}") from exc


_GUARDED_TRIES = 3  # a Conflict re-reads and decides again; a Deployment that keeps moving fails the attempt


async def patch_template_guarded(
    ctx: StepContext, decide: Callable[[str, JsonDict], StepResult | tuple[JsonDict, StepResult]]
) -> StepResult:
    """Decide from the Deployment and apply the strategic-merge patch decided, guarded by the resourceVersion
    decided from.

    Why: a template change (set env, set resources, rollout restart) is decided from the Deployment as it
    is; reading it from the process's watch cache instead of a GET saves a request while the namespace Lease
    is held. The write carries the resourceVersion it was decided from, so a cached body that is out of date
    costs a Conflict, a fresh GET and a new decision, never a change computed from an old template. A "no
    change needed" answer (`decide` returns a StepResult) writes nothing and is therefore never taken from
    the cache: it is confirmed by a fresh read first. The write's answer is remembered by the cache, so the
    next step or incident decides from it until the watch has caught up.
    """
    fresh = False
    try:
        name, deployment = await get_deployment(ctx, cached=True)
    except StepFailed:  # not in the cache (yet): only a fresh read may say it does not exist
        (name, deployment), fresh = await get_deployment(ctx), True
    for _ in range(_GUARDED_TRIES):
        try:
            decided = decide(name, deployment)
        except StepFailed:
            if fresh:
                raise
            decided = None  # e.g. a container the cached body does not show yet: decide from a fresh read
        if not isinstance(decided, tuple):
            if decided is not None and fresh:
                return decided
            (name, deployment), fresh = await get_deployment(ctx), True
            continue
        patch, result = decided
        version = (deployment.get("metadata") or {}).get("resourceVersion")
        guarded = _merged(patch, {"metadata": {"resourceVersion": version}}) if version else patch
        try:
            written = await ctx.runtime.kube.patch(DEPLOYMENTS, name, guarded, ctx.namespace, patch_type="strategic")
        except Conflict:
            (name, deployment), fresh = await get_deployment(ctx), True
            continue
        ctx.runtime.watch_cache(DEPLOYMENTS).remember(written)
        return result
    raise StepFailed(f"deployment/{name} kept changing while this step decided ({_GUARDED_TRIES} conflicts in a row)")


def _template(deployment: JsonDict) -> JsonDict:
    return dict((deployment.get("spec") or {}).get("template") or {})


def _template_annotations(deployment: JsonDict) -> dict[str, str]:
    return dict((_template(deployment).get("metadata") or {}).get("annotations") or {})


def _containers(deployment: JsonDict) -> list[JsonDict]:
    return list((_template(deployment).get("spec") or {}).get("containers") or [])


def _container(ctx: StepContext, name: str, deployment: JsonDict) -> JsonDict:
    """The named container, or the first one (what `kubectl set env` picks when there is only one)."""
    containers = _containers(deployment)
    wanted = param_str(ctx.step, "container")
    if not containers:
        raise StepFailed(f"deployment/{name} has no containers")
    if wanted is None:
        return containers[0]
    for container in containers:
        if container.get("name") == wanted:
            return container
    raise StepFailed(f"deployment/{name} has no container {wanted!r} (has {', '.join(c['name'] for c in containers)})")


def _stamp_patch(ctx: StepContext, extra: dict[str, str] | None = None) -> JsonDict:
    return {"spec": {"template": {"metadata": {"annotations": {STAMP_ANNOTATION: ctx.stamp, **(extra or {})}}}}}


def _merged(*patches: JsonDict) -> JsonDict:
    result: JsonDict = {}
    for patch in patches:
        _deep_merge(result, patch)
    return result


def _deep_merge(into: JsonDict, patch: JsonDict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


# -- rollout restart ---------------------------------------------------------------------------------

class RolloutRestart:
    """`kubectl rollout restart deployment/<name>`: a new restartedAt in the pod template, stamped."""

    name = StepAction.ROLLOUT_RESTART
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, deployment = await get_deployment(ctx, cached=True)
        previous = _template_annotations(deployment).get(RESTARTED_AT)
        since = f"last restarted {previous}" if previous else "never restarted by rollout restart"
        return f"rollout restart deployment/{name}: replace its {_replicas(deployment)} pod(s) ({since})"

    async def run(self, ctx: StepContext) -> StepResult:
        now = ctx.runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")

        def decide(name: str, deployment: JsonDict) -> StepResult | tuple[JsonDict, StepResult]:
            if _template_annotations(deployment).get(STAMP_ANNOTATION) == ctx.stamp:
                return StepResult(Outcome.ALREADY_DONE, f"deployment/{name} already restarted by this step")
            return (_stamp_patch(ctx, {RESTARTED_AT: now}),
                    StepResult(Outcome.DONE, f"deployment/{name} restarted (restartedAt {now})", {"restartedAt": now}))

        return await patch_template_guarded(ctx, decide)


def _replicas(deployment: JsonDict) -> int:
    return int((deployment.get("spec") or {}).get("replicas", 1) or 0)


# -- rollout status ----------------------------------------------------------------------------------

def rollout_progress(deployment: JsonDict) -> tuple[bool, str]:
    """(complete, message) exactly as `kubectl rollout status` decides it; StepFailed on a stalled rollout."""
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "?")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return False, f"waiting for deployment/{name} spec update to be observed"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise StepFailed(f"deployment/{name} exceeded its progress deadline: {condition.get('message', '')}")
    wanted = _replicas(deployment)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return False, f"deployment/{name}: {updated} of {wanted} updated replicas are available"
    if total > updated:
        return False, f"deployment/{name}: {total - updated} old replicas are pending termination"
    if available < updated:
        return False, f"deployment/{name}: {available} of {updated} updated replicas are available"
    return True, f"deployment/{name} successfully rolled out ({available}/{wanted} available)"


async def unready_pods(ctx: StepContext, deployment: JsonDict) -> list[JsonDict]:
    """The Deployment's pods that can still become Ready but are not (ImagePullBackOff, CrashLoopBackOff, …)."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return []
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = await ctx.runtime.kube.list(PODS, ctx.namespace, label_selector=selector)
    return [p for p in pods if can_become_ready(p) and not is_ready(p)]


class RolloutStatus:
    """`kubectl rollout status deployment/<name>`: waits (Outcome.WAITING) until the rollout is complete.

    Every message while waiting, and the failure on ProgressDeadlineExceeded, names the pods that are not
    Ready and why, so a stalled rollout ends with "new-pod (ImagePullBackOff)" rather than a bare timeout.
    """

    name = StepAction.ROLLOUT_STATUS
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, deployment = await get_deployment(ctx, cached=True)
        _, message = rollout_progress(deployment)
        return f"wait for deployment/{name} to finish rolling out (now: {message})"

    async def run(self, ctx: StepContext) -> StepResult:
        _, deployment = await get_deployment(ctx)
        status = deployment.get("status") or {}
        evidence = {k: str(status.get(k, 0)) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
        try:
            done, message = rollout_progress(deployment)
        except StepFailed as exc:
            stuck = await unready_pods(ctx, deployment)
            raise StepFailed(f"{exc}; pods not Ready: {described(stuck)}" if stuck else str(exc)) from exc
        if done:
            return StepResult(Outcome.DONE, message, evidence)
        stuck = await unready_pods(ctx, deployment)
        if stuck:
            evidence["notReady"] = described(stuck)
            message += f"; not Ready: {evidence['notReady']}"
        return StepResult(Outcome.WAITING, message, evidence, retry_after=ctx.runtime.settings.step_poll_seconds)


# -- rollout undo ------------------------------------------------------------------------------------

def _revision(obj: JsonDict) -> int | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _comparable_template(template: JsonDict) -> JsonDict:
    """A pod template without the ReplicaSet's pod-template-hash label, as kubectl compares and copies it."""
    result = copy.deepcopy(template)
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return result


async def _owned_replicasets(ctx: StepContext, deployment: JsonDict) -> list[JsonDict]:
    uid = (deployment.get("metadata") or {}).get("uid")
    return [
        rs for rs in await ctx.runtime.kube.list(REPLICASETS, ctx.namespace)
        if any(ref.get("uid") == uid for ref in (rs.get("metadata") or {}).get("ownerReferences") or [])
    ]


async def _undo_target(ctx: StepContext, name: str, deployment: JsonDict) -> JsonDict:
    """The ReplicaSet to roll back to: parameters.toRevision, else the newest revision before the current one."""
    current = _revision(deployment)
    wanted = param_int(ctx.step, "toRevision")
    history = sorted(
        ((rev, rs) for rs in await _owned_replicasets(ctx, deployment) if (rev := _revision(rs)) is not None),
        key=lambda item: item[0],
    )
    if wanted is not None:
        for rev, rs in history:
            if rev == wanted:
                return rs
        known = ", ".join(str(rev) for rev, _ in history) or "none"
        raise StepFailed(f"deployment/{name} has no revision {wanted} (revisions: {known})")
    older = [(rev, rs) for rev, rs in history if current is None or rev < current]
    if not older:
        raise StepFailed(f"deployment/{name} has no previous revision to roll back to (current {current})")
    return older[-1][1]


class RolloutUndo:
    """`kubectl rollout undo`: copy the previous revision's pod template (minus pod-template-hash) back.

    The chosen ReplicaSet is checkpointed first: after the undo the controller renumbers that ReplicaSet as
    the newest revision, so a resumed step must not re-pick "the previous revision" (that would undo the undo).
    """

    name = StepAction.ROLLOUT_UNDO
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, deployment = await get_deployment(ctx, cached=True)
        try:
            target = await _undo_target(ctx, name, deployment)
        except StepFailed as exc:
            return f"nothing to roll back to, the step would fail: {exc}"
        containers = ((target.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        images = ", ".join(str(c.get("image", "?")) for c in containers)
        return (f"roll back deployment/{name} from revision {_revision(deployment)} to revision {_revision(target)} "
                f"(replicaset/{target['metadata']['name']}, image {images})")

    async def run(self, ctx: StepContext) -> StepResult:
        name, deployment = await get_deployment(ctx)
        rs_name = ctx.checkpoint.get("replicaSet")
        if rs_name is None:
            target = await _undo_target(ctx, name, deployment)
            rs_name = str(target["metadata"]["name"])
            await ctx.save_checkpoint({
                "replicaSet": rs_name,
                "fromRevision": str(_revision(deployment)),
                "toRevision": str(_revision(target)),
            })
        else:
            try:
                target = await ctx.runtime.kube.get(REPLICASETS, rs_name, ctx.namespace)
            except NotFound as exc:
                raise StepFailed(f"replicaset/{rs_name} chosen for the rollback no longer exists") from exc
        evidence = {"fromRevision": ctx.checkpoint.get("fromRevision", str(_revision(deployment))),
                    "toRevision": ctx.checkpoint.get("toRevision", str(_revision(target))), "replicaSet": rs_name}
        wanted = _comparable_template(target["spec"]["template"])
        if _comparable_template(_template(deployment)) == wanted:
            return StepResult(Outcome.ALREADY_DONE,
                              f"deployment/{name} already runs the pod template of replicaset/{rs_name}", evidence)
        await ctx.runtime.kube.patch(
            DEPLOYMENTS, name,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": deployment["metadata"]["resourceVersion"]},
                {"op": "replace", "path": "/spec/template", "value": wanted},
            ],
            ctx.namespace, patch_type="json",
        )
        return StepResult(
            Outcome.DONE,
            f"deployment/{name} rolled back from revision {evidence['fromRevision']} to {evidence['toRevision']}",
            evidence,
        )


# -- scale -------------------------------------------------------------------------------------------

REMEMBERED_REPLICAS_ANNOTATION = "ops.tradesense.io/remembered-replicas"


class Scale:
    """`kubectl scale deployment/<name> --replicas=N` (through the scale subresource).

    With `holdSeconds` the scale-out is also recorded as a scale floor on the Deployment
    (`ops.tradesense.io/scale-floor`), so a ScalingPolicy keeps at least N replicas until the hold ends
    instead of undoing the incident's decision on its next evaluation.

    With `remember` (the restore procedure's "scale to 0, remembering replicas") the count before the
    change is written to the Deployment's `ops.tradesense.io/remembered-replicas` annotation first — once per
    incident, so a re-run after a crash never records the 0 it already set. A later step with
    `restoreRemembered` scales back to that count (falling back to `replicas`), checkpoints it, then
    removes the annotation.
    """

    name = StepAction.SCALE
    destructive = False

    async def _wanted(self, ctx: StepContext, deployment: JsonDict) -> int:
        if not param_bool(ctx.step, "restoreRemembered"):
            return require_int(ctx.step, "replicas")
        if "rememberedReplicas" in ctx.checkpoint:
            return int(ctx.checkpoint["rememberedReplicas"])
        remembered = _remembered(deployment, ctx)
        return remembered if remembered is not None else require_int(ctx.step, "replicas")

    async def _decide(self, ctx: StepContext, *, cached: bool = False) -> tuple[str, JsonDict, int, int, bool]:
        name, deployment = await get_deployment(ctx, cached=cached)
        wanted = await self._wanted(ctx, deployment)
        current = _replicas(deployment)
        at_least = param_bool(ctx.step, "atLeast")
        satisfied = current >= wanted if at_least else current == wanted
        return name, deployment, current, wanted, satisfied

    async def describe(self, ctx: StepContext) -> str:
        name, _, current, wanted, satisfied = await self._decide(ctx, cached=True)
        hold = param_int(ctx.step, "holdSeconds")
        held = f"; held as a floor for {hold}s" if hold else ""
        remember = f"; remembering {current} to scale back to" if param_bool(ctx.step, "remember") else ""
        back = " (the count remembered before the restore)" if param_bool(ctx.step, "restoreRemembered") else ""
        if satisfied:
            return f"{name} replicas stay {current} (wanted {'at least ' if current > wanted else ''}{wanted}){held}"
        return f"{name} replicas {current} → {wanted}{back}{held}{remember}"

    async def run(self, ctx: StepContext) -> StepResult:
        name, deployment, current, wanted, satisfied = await self._decide(ctx)
        previous = ctx.checkpoint.get("previousReplicas", str(current))
        evidence = {"previousReplicas": previous, "replicas": str(max(current, wanted) if satisfied else wanted)}
        if param_bool(ctx.step, "remember") and _remembered(deployment, ctx) is None and not satisfied:
            record = json.dumps({"replicas": current, "incident": _incident_key(ctx)})
            await ctx.runtime.kube.patch(
                DEPLOYMENTS, name, {"metadata": {"annotations": {REMEMBERED_REPLICAS_ANNOTATION: record}}}, ctx.namespace
            )
            evidence["remembered"] = str(current)
        if param_bool(ctx.step, "restoreRemembered") and "rememberedReplicas" not in ctx.checkpoint:
            await ctx.save_checkpoint({"rememberedReplicas": str(wanted)})
        if not satisfied:
            if "previousReplicas" not in ctx.checkpoint:
                await ctx.save_checkpoint({"previousReplicas": previous})
            await ctx.runtime.kube.set_replicas(ctx.namespace, name, wanted)
        if param_bool(ctx.step, "restoreRemembered") and _remembered(deployment, ctx) is not None:
            await ctx.runtime.kube.patch(
                DEPLOYMENTS, name, {"metadata": {"annotations": {REMEMBERED_REPLICAS_ANNOTATION: None}}}, ctx.namespace
            )
        held = await self._hold_floor(ctx, name, wanted)
        if held:
            evidence["floorUntil"] = held
        if satisfied:
            return StepResult(Outcome.ALREADY_DONE, f"{name} already has {current} replicas (wanted {wanted})", evidence)
        return StepResult(Outcome.DONE, f"{name} replicas {previous} → {wanted}", evidence)

    async def _hold_floor(self, ctx: StepContext, name: str, wanted: int) -> str | None:
        """Record (or refresh, idempotently: one entry per incident) this incident's scale floor."""
        hold = param_int(ctx.step, "holdSeconds")
        if not hold or wanted == 0:
            return None
        _, deployment = await get_deployment(ctx)
        now = ctx.runtime.clock.now()
        existing = ((deployment.get("metadata") or {}).get("annotations") or {}).get(SCALE_FLOOR_ANNOTATION)
        floor = ScaleFloor(replicas=wanted, until=now + timedelta(seconds=hold),
                           incident=f"{ctx.incident.namespace}/{ctx.incident.name}")
        patch = {"metadata": {"annotations": {SCALE_FLOOR_ANNOTATION: merge_floor(existing, floor, now)}}}
        await ctx.runtime.kube.patch(DEPLOYMENTS, name, patch, ctx.namespace)
        return floor.until.strftime("%Y-%m-%dT%H:%M:%SZ")


def _incident_key(ctx: StepContext) -> str:
    return f"{ctx.incident.namespace}/{ctx.incident.name}"


def _remembered(deployment: JsonDict, ctx: StepContext) -> int | None:
    """The replica count this incident remembered on the Deployment, if any (others' records are ignored)."""
    text = ((deployment.get("metadata") or {}).get("annotations") or {}).get(REMEMBERED_REPLICAS_ANNOTATION)
    if not text:
        return None
    try:
        record = json.loads(text)
        if record.get("incident") != _incident_key(ctx):
            return None
        return int(record["replicas"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# -- set env -----------------------------------------------------------------------------------------

def _env_entry(container: JsonDict, var: str) -> JsonDict | None:
    for entry in container.get("env") or []:
        if entry.get("name") == var:
            return dict(entry)
    return None


class SetEnv:
    """`kubectl set env deployment/<name> VAR=value` on one container, keyed by name (strategic merge)."""

    name = StepAction.SET_ENV
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, deployment = await get_deployment(ctx, cached=True)
        var, value = require_str(ctx.step, "name"), require_str(ctx.step, "value")
        container = _container(ctx, name, deployment)
        entry = _env_entry(container, var)
        if entry is not None and entry.get("value") == value and "valueFrom" not in entry:
            return f"{var}={value} already set on deployment/{name} container {container['name']} (no change)"
        now = "unset" if entry is None else ("from a reference" if "valueFrom" in entry else f"{entry.get('value')!r}")
        return f"set {var}={value} on deployment/{name} container {container['name']} (currently {now})"

    async def run(self, ctx: StepContext) -> StepResult:
        var, value = require_str(ctx.step, "name"), require_str(ctx.step, "value")

        def decide(name: str, deployment: JsonDict) -> StepResult | tuple[JsonDict, StepResult]:
            container = _container(ctx, name, deployment)
            entry = _env_entry(container, var)
            if entry is not None and entry.get("value") == value and "valueFrom" not in entry:
                return StepResult(Outcome.ALREADY_DONE, f"{var}={value} already set on deployment/{name}", {var: value})
            env_patch: JsonDict = {"name": var, "value": value}
            if entry is not None and "valueFrom" in entry:
                env_patch["valueFrom"] = None  # a literal value replaces the reference, as kubectl set env does
            patch = _merged(
                _stamp_patch(ctx),
                {"spec": {"template": {"spec": {"containers": [{"name": container["name"], "env": [env_patch]}]}}}},
            )
            before = "unset" if entry is None else str(entry.get("value", "a reference"))
            return patch, StepResult(Outcome.DONE, f"set {var}={value} on deployment/{name} (was {before})", {var: value})

        return await patch_template_guarded(ctx, decide)


# -- set resources -----------------------------------------------------------------------------------

_RESOURCE_PARAMS = {
    "limitsMemory": ("limits", "memory"),
    "limitsCpu": ("limits", "cpu"),
    "requestsMemory": ("requests", "memory"),
    "requestsCpu": ("requests", "cpu"),
}
_SUFFIXES: dict[str, Decimal | int] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "K": 10**3, "M": 10**6,
    "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}


def quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity as a number, so 4Gi equals 4096Mi and 1 equals 1000m."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], Decimal(_SUFFIXES[suffix])
            break
    else:
        number, factor = text, Decimal(1)
    try:
        return Decimal(number) * factor
    except InvalidOperation as exc:
        raise StepFailed(f"{text!r} is not a resource quantity") from exc


def _resource_changes(ctx: StepContext, container: JsonDict) -> list[tuple[str, str, str | None, str]]:
    """(section, resource, current, wanted) for every requested value that differs from the current one."""
    resources: dict[str, Any] = container.get("resources") or {}
    changes = []
    for param, (section, resource) in _RESOURCE_PARAMS.items():
        wanted = param_str(ctx.step, param)
        if wanted is None:
            continue
        current = (resources.get(section) or {}).get(resource)
        if current is None or quantity(str(current)) != quantity(wanted):
            changes.append((section, resource, None if current is None else str(current), wanted))
    return changes


class SetResources:
    """`kubectl set resources deployment/<name> --limits=memory=4Gi` on one container."""

    name = StepAction.SET_RESOURCES
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        name, deployment = await get_deployment(ctx, cached=True)
        container = _container(ctx, name, deployment)
        changes = _resource_changes(ctx, container)
        if not changes:
            return f"deployment/{name} container {container['name']} already has the requested resources (no change)"
        parts = ", ".join(f"{s}.{r} {cur or 'unset'} → {new}" for s, r, cur, new in changes)
        return f"deployment/{name} container {container['name']}: {parts}"

    async def run(self, ctx: StepContext) -> StepResult:
        def decide(name: str, deployment: JsonDict) -> StepResult | tuple[JsonDict, StepResult]:
            container = _container(ctx, name, deployment)
            changes = _resource_changes(ctx, container)
            if not changes:
                return StepResult(Outcome.ALREADY_DONE, f"deployment/{name} already has the requested resources")
            resources: dict[str, dict[str, str]] = {}
            for section, resource, _, wanted in changes:
                resources.setdefault(section, {})[resource] = wanted
            patch = _merged(
                _stamp_patch(ctx),
                {"spec": {"template": {"spec": {"containers": [{"name": container["name"], "resources": resources}]}}}},
            )
            parts = ", ".join(f"{s}.{r} {cur or 'unset'} → {new}" for s, r, cur, new in changes)
            return patch, StepResult(Outcome.DONE, f"deployment/{name}: {parts}",
                                     {f"{s}.{r}": new for s, r, _, new in changes})

        return await patch_template_guarded(ctx, decide)
