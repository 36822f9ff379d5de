"""Pod and node actions: `kubectl get nodes|pods`, `kubectl delete pod -l …`, `kubectl wait --for=condition=ready`.

Deleting by label is the one place where a naive retry does harm: after a crash, "delete the pods with
app=postgres" would also delete the replacements that are starting. So the pods to delete are saved in
the step's checkpoint before the first deletion, and only those (name and UID) are ever deleted.

On a real cluster a deleted pod stays Terminating for its grace period, and indefinitely on a node that
stopped reporting (the site-down case); an evicted pod stays listed in phase Failed. So `delete-pods` is
done once the deleted pods are gone OR as many Ready replacements run, and names the ones still
Terminating (and their NotReady node) instead of waiting for them; `wait-pods-ready` counts only pods that
can still become Ready and reports the others. Forcing a stuck pod away is a human decision, not a retry.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, NODES, PODS, JsonDict
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.pod_state import (
    LISTED,
    can_become_ready,
    described,
    is_ready,
    is_terminating,
    name_of,
    restarts,
    uid_of,
)
from tradesense_operator.services.step_adapters.step_inputs import param_str, target_name


def _selector(ctx: StepContext) -> str | None:
    """The label selector of a `pods/<selector>` target; None for the whole namespace (`pods`)."""
    return target_name(ctx.step, "pods") or None


def _where(selector: str | None, namespace: str) -> str:
    return f"pods -l {selector} -n {namespace}" if selector else f"pods -n {namespace}"


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
        not_ready = [name_of(n) for n in nodes if not is_ready(n)]
        evidence = {"nodes": str(len(nodes)), "ready": str(len(nodes) - len(not_ready))}
        if not_ready:
            evidence["notReady"] = ", ".join(not_ready[:LISTED])
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
        not_ready = [p for p in pods if not is_ready(p)]
        evidence = {
            "pods": str(len(pods)),
            "ready": str(len(pods) - len(not_ready)),
            "restarts": str(sum(restarts(p) for p in pods)),
        }
        if not_ready:
            evidence["notReady"] = described(not_ready)
        message = f"{len(pods) - len(not_ready)}/{len(pods)} {_where(selector, ctx.namespace)} Ready"
        if not_ready:
            message += f"; not ready: {evidence['notReady']}"
        return StepResult(Outcome.DONE, message, evidence)


class DeletePods:
    """`kubectl delete pod -l <selector>`: the matching pods are checkpointed, deleted, and their replacements awaited.

    Done when every deleted pod is gone, or when as many Ready replacements run as pods were deleted: a pod
    stuck Terminating (its node NotReady, a finalizer) is then named in the result, not waited for.
    """

    name = StepAction.DELETE_PODS
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        selector = _selector(ctx)
        pods = [p for p in await _pods(ctx, selector) if can_become_ready(p)]
        names = ", ".join(name_of(p) for p in pods[:LISTED]) or "none"
        return f"delete {len(pods)} {_where(selector, ctx.namespace)} ({names}); their controller replaces them"

    async def run(self, ctx: StepContext) -> StepResult:
        selector = _selector(ctx)
        if selector is None:
            raise StepFailed("delete-pods needs a label selector target (pods/<key>=<value>), not the whole namespace")
        saved = ctx.checkpoint.get("pods")
        if saved is None:
            pods = [p for p in await _pods(ctx, selector) if can_become_ready(p)]
            if not pods:
                return StepResult(Outcome.SKIPPED, f"no {_where(selector, ctx.namespace)} to delete")
            chosen = {name_of(p): uid_of(p) for p in pods}
            await ctx.save_checkpoint({"pods": ",".join(f"{n}={u}" for n, u in sorted(chosen.items()))})
        else:
            chosen = dict(item.split("=", 1) for item in saved.split(",") if item)
        remaining = await self._delete(ctx, chosen)
        where = _where(selector, ctx.namespace)
        evidence = {"deleted": ", ".join(sorted(chosen)[:LISTED]), "count": str(len(chosen))}
        if not remaining:
            return StepResult(Outcome.DONE, f"deleted {len(chosen)} {where}", evidence)
        uids = set(chosen.values())
        replacements = [p for p in await _pods(ctx, selector) if uid_of(p) not in uids and can_become_ready(p)]
        ready = [p for p in replacements if is_ready(p)]
        stuck = await self._stuck(ctx, remaining)
        evidence["stillTerminating"] = stuck
        if len(ready) >= len(chosen):
            evidence["replacements"] = ", ".join(name_of(p) for p in ready[:LISTED])
            return StepResult(
                Outcome.DONE,
                f"deleted {len(chosen)} {where}; {len(ready)} replacement(s) Ready "
                f"({evidence['replacements']}); still Terminating: {stuck} (force deletion is a separate decision)",
                evidence,
            )
        starting = f"; replacements not Ready yet: {described(p for p in replacements if not is_ready(p))}" if (
            len(replacements) > len(ready)) else ""
        return StepResult(
            Outcome.WAITING,
            f"{len(remaining)} of {len(chosen)} deleted pods still Terminating: {stuck}; "
            f"{len(ready)}/{len(chosen)} replacements Ready{starting}",
            evidence, retry_after=ctx.runtime.settings.step_poll_seconds,
        )

    async def _delete(self, ctx: StepContext, chosen: dict[str, str]) -> list[JsonDict]:
        """Delete the chosen pods that still exist with their saved UID; return those not gone yet."""
        remaining = []
        for name, uid in sorted(chosen.items()):
            pod = await ctx.runtime.kube.get_or_none(PODS, name, ctx.namespace)
            if pod is None or uid_of(pod) != uid:
                continue  # gone, or a different pod that reuses the name: never touch a replacement
            if not is_terminating(pod):
                try:
                    await ctx.runtime.kube.delete(PODS, name, ctx.namespace)
                except NotFound:
                    continue
                pod = await ctx.runtime.kube.get_or_none(PODS, name, ctx.namespace)
                if pod is None or uid_of(pod) != uid:
                    continue
            remaining.append(pod)
        return remaining

    async def _stuck(self, ctx: StepContext, pods: list[JsonDict]) -> str:
        """`name (since <deletionTimestamp>, node <n> NotReady)` for pods still Terminating."""
        nodes = {name_of(n): is_ready(n) for n in await ctx.runtime.kube.list(NODES)}
        items = []
        for pod in pods:
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            detail = [f"deletion due {pod['metadata'].get('deletionTimestamp')}"]
            if node:
                detail.append(f"node {node}" + ("" if nodes.get(node, False) else " NotReady"))
            items.append(f"{name_of(pod)} ({', '.join(detail)})")
        text = ", ".join(items[:LISTED])
        return text + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


class WaitPodsReady:
    """`kubectl wait --for=condition=ready pod -l <selector>`, also requiring the Deployment's replica count.

    Only pods that can still become Ready count: Terminating pods and pods in phase Failed/Succeeded (evicted,
    completed) are reported, never waited for. A pod stuck in ImagePullBackOff/CrashLoopBackOff is waited for
    and named with its reason, so a timeout says why.
    """

    name = StepAction.WAIT_PODS_READY
    destructive = False

    async def _state(self, ctx: StepContext, *, cached: bool = False
                     ) -> tuple[str, int, list[JsonDict], list[JsonDict]]:
        """`cached` (describe): the replicas wanted come from the Deployment watch cache, not a scale GET."""
        selector = _selector(ctx)
        pods = await _pods(ctx, selector)
        deployment = param_str(ctx.step, "deployment")
        expected = 1
        if deployment is not None:
            try:
                if cached:
                    body = await ctx.runtime.watch_cache(DEPLOYMENTS).get(ctx.namespace, deployment)
                    expected = int((body.get("spec") or {}).get("replicas", 1) or 0)
                else:
                    expected = await ctx.runtime.kube.get_replicas(ctx.namespace, deployment)
            except NotFound as exc:
                raise StepFailed(f"deployment/{deployment} not found in namespace {ctx.namespace}") from exc
        return _where(selector, ctx.namespace), expected, [p for p in pods if can_become_ready(p)], [
            p for p in pods if not can_become_ready(p)
        ]

    async def describe(self, ctx: StepContext) -> str:
        where, expected, pods, _ = await self._state(ctx, cached=True)
        ready = sum(1 for p in pods if is_ready(p))
        return f"wait until {expected} {where} are Ready (now {ready}/{len(pods)} Ready)"

    async def run(self, ctx: StepContext) -> StepResult:
        where, expected, pods, ignored = await self._state(ctx)
        ready = [p for p in pods if is_ready(p)]
        evidence = {"ready": str(len(ready)), "pods": str(len(pods)), "expected": str(expected)}
        note = ""
        if ignored:
            evidence["notCounted"] = described(ignored)
            note = f"; not counted (cannot become Ready): {evidence['notCounted']}"
        if len(ready) >= expected and len(ready) == len(pods):
            names = ", ".join(name_of(p) for p in ready[:LISTED])
            return StepResult(Outcome.DONE, f"{len(ready)} {where} Ready ({names}){note}", evidence)
        pending = [p for p in pods if not is_ready(p)]
        detail = f"; waiting for {described(pending)}" if pending else ""
        return StepResult(Outcome.WAITING, f"{len(ready)}/{expected} {where} Ready{detail}{note}", evidence,
                          retry_after=ctx.runtime.settings.step_poll_seconds)
