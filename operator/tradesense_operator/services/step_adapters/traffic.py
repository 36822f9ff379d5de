"""Traffic actions: the blue/green Service selector switch and the DR failover.

DR failover, honestly: the runbook's `kubectl config use-context tradesense-dr && kubectl apply -f
k8s/dr-activate.yaml` switches the *human's* kubectl to another cluster. An in-cluster operator has one
API server and cannot do that. What it can do, and what this action does, is record the approved
decision in the ConfigMap `dr-activate` of the target namespace (`activate: "true"` plus who and when),
which is the hand-over point for whatever activates the DR site (a GitOps controller in the DR cluster,
a replication job). Without that ConfigMap the step fails and says the manual command to run.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import CONFIGMAPS, PODS, SERVICES, JsonDict
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.pod_state import is_ready
from tradesense_operator.services.step_adapters.step_inputs import param_str, require_str, target_name

DR_ACTIVATED_AT = "ops.tradesense.io/dr-activated-at"
MANUAL_FAILOVER = "kubectl config use-context tradesense-dr && kubectl apply -f k8s/dr-activate.yaml"


class SwitchServiceSelector:
    """`kubectl patch service <svc> -p '{"spec":{"selector":{"version":"green"}}}'`, only onto Ready pods."""

    name = StepAction.SWITCH_SERVICE_SELECTOR
    destructive = False

    async def _read(self, ctx: StepContext) -> tuple[str, JsonDict, str, str, dict[str, str]]:
        name = target_name(ctx.step, "service")
        key, value = param_str(ctx.step, "key", "version") or "version", require_str(ctx.step, "value")
        try:
            service = await ctx.runtime.kube.get(SERVICES, name, ctx.namespace)
        except NotFound as exc:
            raise StepFailed(f"service/{name} not found in namespace {ctx.namespace}") from exc
        selector = dict((service.get("spec") or {}).get("selector") or {})
        return name, service, key, value, selector

    async def describe(self, ctx: StepContext) -> str:
        name, _, key, value, selector = await self._read(ctx)
        current = selector.get(key)
        if current == value:
            return f"service/{name} already selects {key}={value} (no change)"
        return f"service/{name} selector {key}: {current or 'unset'} → {value}"

    async def run(self, ctx: StepContext) -> StepResult:
        name, _, key, value, selector = await self._read(ctx)
        previous = selector.get(key)
        if previous == value:
            return StepResult(Outcome.ALREADY_DONE, f"service/{name} already selects {key}={value}", {key: value})
        wanted = {**selector, key: value}
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        pods = await ctx.runtime.kube.list(PODS, ctx.namespace, label_selector=label_selector)
        ready = [p for p in pods if is_ready(p)]
        if not ready:
            # the runbook tests the green version before switching; an empty target would drop all traffic
            raise StepFailed(f"no Ready pods match {label_selector}; not switching service/{name} onto nothing")
        patch = {"metadata": {"annotations": {STAMP_ANNOTATION: ctx.stamp}}, "spec": {"selector": {key: value}}}
        await ctx.runtime.kube.patch(SERVICES, name, patch, ctx.namespace)
        return StepResult(
            Outcome.DONE,
            f"service/{name} selector {key}: {previous or 'unset'} → {value} ({len(ready)} Ready pods behind it)",
            {key: value, "previous": previous or "", "readyPods": str(len(ready))},
        )


class DrFailover:
    """Record the approved DR activation in configmap/dr-activate (see the module docstring for why)."""

    name = StepAction.DR_FAILOVER
    destructive = True

    async def _read(self, ctx: StepContext) -> tuple[str, JsonDict | None]:
        name = target_name(ctx.step, "configmap")
        return name, await ctx.runtime.kube.get_or_none(CONFIGMAPS, name, ctx.namespace)

    async def describe(self, ctx: StepContext) -> str:
        name, configmap = await self._read(ctx)
        if configmap is None:
            return (f"configmap/{name} is missing: the step would fail; fail over by hand with {MANUAL_FAILOVER}")
        return (f"record DR activation (activate=true) in configmap/{name} for the DR site to act on; "
                "this operator does not switch clusters")

    async def run(self, ctx: StepContext) -> StepResult:
        name, configmap = await self._read(ctx)
        if configmap is None:
            raise StepFailed(f"no configmap/{name} in namespace {ctx.namespace} describes the DR site; "
                             f"fail over by hand: {MANUAL_FAILOVER}")
        annotations = (configmap.get("metadata") or {}).get("annotations") or {}
        if annotations.get(STAMP_ANNOTATION) == ctx.stamp:
            return StepResult(Outcome.ALREADY_DONE, f"DR activation already recorded in configmap/{name}",
                              {"activatedAt": str(annotations.get(DR_ACTIVATED_AT, ""))})
        now = ctx.runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {
            "metadata": {"annotations": {STAMP_ANNOTATION: ctx.stamp, DR_ACTIVATED_AT: now}},
            "data": {"activate": "true"},
        }
        await ctx.runtime.kube.patch(CONFIGMAPS, name, patch, ctx.namespace)
        return StepResult(
            Outcome.DONE,
            f"recorded DR activation in configmap/{name} (activate=true at {now}); the DR site's automation "
            "performs the failover — this operator does not switch clusters",
            {"activatedAt": now},
        )
