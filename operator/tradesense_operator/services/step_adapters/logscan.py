"""`kubectl logs … | grep -E "(auth|login|token)" | grep -v 200`: matching log lines counted as evidence.

Log lines can carry credentials (a bearer token, a reset link), so every quoted line passes through
`redact_line` before it reaches status or Events; counts are exact, quotes are few and short.

A pod whose log cannot be read (a container in ImagePullBackOff or CreateContainerError answers 400, a
kubelet error 500, a forbidden `pods/log`) is counted as unreadable, with the first error as evidence, and the
other pods are still scanned: after a bad deploy the logs are unreadable exactly when the rollback that
follows this step is needed (see step_adapters/evidence.py for the rule).

Read-only: must not change any object, and must never quote a line unredacted.
"""

from __future__ import annotations

import re

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.kube import PODS
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.evidence import read_error
from tradesense_operator.services.step_adapters.step_inputs import param_int, param_str, require_str, target_name

_QUOTED = 5
_LINE_CHARS = 240
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_CREDENTIAL = re.compile(
    r"(?i)\b(token|access_token|refresh_token|password|passwd|secret|api[_-]?key|authorization)"
    r"(\s*[=:]\s*)(?!(?:bearer|basic)\s)(\"[^\"]*\"|'[^']*'|[^\s&,;]+)"
)
_LONG_OPAQUE = re.compile(r"\b[A-Za-z0-9_+/=-]{32,}\b")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;]+")


def redact_line(line: str) -> str:
    """Mask JWTs, `token=…`-style values and long opaque strings; keep the rest readable."""
    line = _JWT.sub("***", line)
    line = _BEARER.sub(lambda m: f"{m.group(1)} ***", line)
    line = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}***", line)
    line = _LONG_OPAQUE.sub("***", line)
    return line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + "…"


def _compile(pattern: str, name: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise StepFailed(f"parameter {name}: {pattern!r} is not a valid regular expression ({exc})") from exc


class LogScan:
    """Scan the logs of the target's pods; the count and a few redacted lines become evidence."""

    name = StepAction.LOG_SCAN
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        selector = target_name(ctx.step, "pods")
        include = require_str(ctx.step, "include")
        exclude = param_str(ctx.step, "exclude")
        pods = await ctx.runtime.kube.list(PODS, ctx.namespace, label_selector=selector or None)
        grep = f'grep -E "{include}"' + (f' | grep -vE "{exclude}"' if exclude else "")
        return f"kubectl logs of {len(pods)} pods -l {selector} | {grep}; count the lines (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        selector = target_name(ctx.step, "pods")
        include = _compile(require_str(ctx.step, "include"), "include")
        exclude_text = param_str(ctx.step, "exclude")
        exclude = _compile(exclude_text, "exclude") if exclude_text else None
        tail = param_int(ctx.step, "tailLines")
        since = param_int(ctx.step, "sinceSeconds")
        pods = await ctx.runtime.kube.list(PODS, ctx.namespace, label_selector=selector or None)
        matches: list[str] = []
        per_pod: dict[str, int] = {}
        scanned = 0
        unreadable: dict[str, str] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            try:
                text = await ctx.runtime.kube.pod_logs(ctx.namespace, name, tail_lines=tail, since_seconds=since)
            except NotFound:
                continue  # the pod went away between list and read; its replacement is scanned next time
            except ClientError as exc:
                unreadable[name] = read_error(exc)
                continue
            lines = text.splitlines()
            scanned += len(lines)
            found = [ln for ln in lines if include.search(ln) and not (exclude and exclude.search(ln))]
            per_pod[name] = len(found)
            matches.extend(found)
        evidence = {"matches": str(len(matches)), "linesScanned": str(scanned), "pods": str(len(per_pod))}
        for i, line in enumerate(matches[-_QUOTED:]):
            evidence[f"line{i + 1}"] = redact_line(line)
        worst = max(per_pod.items(), key=lambda item: item[1], default=None)
        where = f"; most in {worst[0]} ({worst[1]})" if worst and worst[1] else ""
        if unreadable:
            first_pod, first_error = next(iter(unreadable.items()))
            evidence["unreadablePods"] = str(len(unreadable))
            evidence["readError"] = f"{first_pod}: {first_error}"
            where += f"; logs of {len(unreadable)} pods unreadable (first: {first_pod}: {first_error})"
        return StepResult(
            Outcome.DONE,
            f"{len(matches)} matching lines in {scanned} log lines of {len(per_pod)} pods -l {selector}{where}",
            evidence,
        )
