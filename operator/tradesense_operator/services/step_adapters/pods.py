"""Pod and node actions: `kubectl get nodes|pods`, `kubectl delete pod -l …`, `kubectl wait --for=condition=ready`.

Deleting by label is the one place where a naive retry does harm: after a crash, "delete the pods with
app=postgres" would also delete the replacements that are starting. So the pods to delete are saved in
the step's checkpoint before the first deletion, and only those (name and UID) are ever deleted.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import NODES, PODS, JsonDict
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.step_inputs import param_str, target_name

_LISTED = 10  # pod names quoted in a message; the rest are counted


def _selector(ctx: StepContext) -> str | None:
    """The label selector of a `pods/<selector>` target; None for the whole namespace (`pods`)."""
    return target_name(ctx.step, "pods") or None


def _where(selector: str | None, namespace: str) -> str:
    return f"pods -l {selector} -n {namespace}" if selector else f"pods -n {namespace}"


def is_ready(pod: JsonDict) -> bool:
    """Condition Ready=True, the test `kubectl wait --for=condition=ready` applies."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _terminating(pod: JsonDict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _name(pod: JsonDict) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def _problem(pod: JsonDict) -> str:
    """Why a pod is not ready, in kubectl's words (the waiting reason, else the phase)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def _restarts(pod: JsonDict) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


async def _pods(ctx: StepContext, selector: str | None) -> list[JsonDict]:
    return await ctx.runtime.kube.list(PODS, ctx.namespace, label_selector=selector)


class CheckNodes:
    """`kubectl get nodes`: how many nodes are Ready, as evidence."""

    name = StepAction.CHECK_NODES
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        nodes = await ctx.runtime.kube.list(NODES)
        ready = sum(1 for n in nodes if is_ready(n))
        return f"report node readiness (read-only; now {ready}/{len(nodes)} Ready)"

    async def run(self, ctx: StepContext) -> StepResult:
        nodes = await ctx.runtime.kube.list(NODES)
        if not nodes:
            return StepResult(Outcome.SKIPPED, "the API server lists no nodes (nothing to check)", {"nodes": "0"})
        not_ready = [_name(n) for n in nodes if not is_ready(n)]
        evidence = {"nodes": str(len(nodes)), "ready": str(len(nodes) - len(not_ready))}
        if not_ready:
            evidence["notReady"] = ", ".join(not_ready[:_LISTED])
        message = f"{len(nodes) - len(not_ready)}/{len(nodes)} nodes Ready"
        return StepResult(Outcome.DONE, message + (f"; not ready: {evidence['notReady']}" if not_ready else ""), evidence)


class CheckPods:
    """`kubectl get pods`: readiness, restarts and the reason of every pod that is not ready."""

    name = StepAction.CHECK_PODS
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"list {_where(_selector(ctx), ctx.namespace)} and report readiness and restarts (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        selector = _selector(ctx)
        pods = await _pods(ctx, selector)
        not_ready = [f"{_name(p)} ({_problem(p)})" for p in pods if not is_ready(p)]
        evidence = {
            "pods": str(len(pods)),
            "ready": str(len(pods) - len(not_ready)),
            "restarts": str(sum(_restarts(p) for p in pods)),
        }
        if not_ready:
            evidence["notReady"] = ", ".join(not_ready[:_LISTED])
        message = f"{len(pods) - len(not_ready)}/{len(pods)} {_where(selector, ctx.namespace)} Ready"
        if not_ready:
            message += f"; not ready: {evidence['notReady']}"
        return StepResult(Outcome.DONE, message, evidence)


class DeletePods:
    """`kubectl delete pod -l <selector>`: the matching pods are checkpointed, deleted, and waited for."""

    name = StepAction.DELETE_PODS
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        selector = _selector(ctx)
        pods = [p for p in await _pods(ctx, selector) if not _terminating(p)]
        names = ", ".join(_name(p) for p in pods[:_LISTED]) or "none"
        return f"delete {len(pods)} {_where(selector, ctx.namespace)} ({names}); their controller replaces them"

    async def run(self, ctx: StepContext) -> StepResult:
        selector = _selector(ctx)
        if selector is None:
            raise StepFailed("delete-pods needs a label selector target (pods/<key>=<value>), not the whole namespace")
        saved = ctx.checkpoint.get("pods")
        if saved is None:
            pods = [p for p in await _pods(ctx, selector) if not _terminating(p)]
            if not pods:
                return StepResult(Outcome.SKIPPED, f"no {_where(selector, ctx.namespace)} to delete")
            chosen = {_name(p): str(p["metadata"]["uid"]) for p in pods}
            await ctx.save_checkpoint({"pods": ",".join(f"{n}={u}" for n, u in sorted(chosen.items()))})
        else:
            chosen = dict(item.split("=", 1) for item in saved.split(",") if item)
        remaining = await self._delete(ctx, chosen)
        evidence = {"deleted": ", ".join(sorted(chosen)[:_LISTED]), "count": str(len(chosen))}
        if remaining:
            return StepResult(
                Outcome.WAITING,
                f"{len(remaining)} of {len(chosen)} deleted pods still terminating: {', '.join(remaining[:_LISTED])}",
                evidence, retry_after=ctx.runtime.settings.step_poll_seconds,
            )
        return StepResult(Outcome.DONE, f"deleted {len(chosen)} {_where(selector, ctx.namespace)}", evidence)

    async def _delete(self, ctx: StepContext, chosen: dict[str, str]) -> list[str]:
        """Delete the chosen pods that still exist with their saved UID; return those not gone yet."""
        remaining = []
        for name, uid in sorted(chosen.items()):
            pod = await ctx.runtime.kube.get_or_none(PODS, name, ctx.namespace)
            if pod is None or pod["metadata"].get("uid") != uid:
                continue  # gone, or a different pod that reuses the name: never touch a replacement
            if not _terminating(pod):
                try:
                    await ctx.runtime.kube.delete(PODS, name, ctx.namespace)
                except NotFound:
                    continue
                if await ctx.runtime.kube.get_or_none(PODS, name, ctx.namespace) is None:
                    continue
            remaining.append(name)
        return remaining


class WaitPodsReady:
    """`kubectl wait --for=condition=ready pod -l <selector>`, also requiring the Deployment's replica count."""

    name = StepAction.WAIT_PODS_READY
    destructive = False

    async def _state(self, ctx: StepContext) -> tuple[str, int, list[JsonDict], list[JsonDict]]:
        selector = _selector(ctx)
        pods = [p for p in await _pods(ctx, selector) if not _terminating(p)]
        ready = [p for p in pods if is_ready(p)]
        deployment = param_str(ctx.step, "deployment")
        expected = 1
        if deployment is not None:
            try:
                expected = await ctx.runtime.kube.get_replicas(ctx.namespace, deployment)
            except NotFound as exc:
                raise StepFailed(f"deployment/{deployment} not found in namespace {ctx.namespace}") from exc
        return _where(selector, ctx.namespace), expected, pods, ready

    async def describe(self, ctx: StepContext) -> str:
        where, expected, pods, ready = await self._state(ctx)
        return f"wait until {expected} {where} are Ready (now {len(ready)}/{len(pods)} Ready)"

    async def run(self, ctx: StepContext) -> StepResult:
        where, expected, pods, ready = await self._state(ctx)
        evidence = {"ready": str(len(ready)), "pods": str(len(pods)), "expected": str(expected)}
        if len(ready) >= expected and len(ready) == len(pods):
            names = ", ".join(_name(p) for p in ready[:_LISTED])
            return StepResult(Outcome.DONE, f"{len(ready)} {where} Ready ({names})", evidence)
        pending = [f"{_name(p)} ({_problem(p)})" for p in pods if not is_ready(p)]
        detail = f"; waiting for {', '.join(pending[:_LISTED])}" if pending else ""
        return StepResult(Outcome.WAITING, f"{len(ready)}/{expected} {where} Ready{detail}", evidence,
                          retry_after=ctx.runtime.settings.step_poll_seconds)
