"""HTTP and TLS actions: the runbook's `curl` checks, the smoke-test loop and the certificate's expiry.

Diagnostic probes (`expect: any`) record what they saw as evidence and never fail the incident: a site
that is down is the reason the incident exists. Verification probes (`expect: ok`, the smoke test) fail
the step when an endpoint does, so an incident only succeeds when the service answers again.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.http import ProbeResult
from tradesense_operator.clients.tls import certificate_not_after
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.connections import http_client
from tradesense_operator.services.step_adapters.step_inputs import param_int, param_str

NO_API_URL = "spec.target.apiUrl is not set: no endpoint to probe"


def _url(ctx: StepContext) -> str | None:
    base = ctx.spec.target.api_url
    if base is None:
        return None
    path = param_str(ctx.step, "path", "/api/v1/monitoring/health") or "/"
    return base.rstrip("/") + "/" + path.lstrip("/")


def _answer(result: ProbeResult) -> str:
    status = str(result.status) if result.status is not None else f"no answer ({result.error})"
    return f"{result.method} {result.url} → {status} in {result.latency_seconds * 1000:.0f} ms"


class HttpProbe:
    """`curl -w "%{http_code} - %{time_total}s"`: one request, or a latency sample with p50/p95."""

    name = StepAction.HTTP_PROBE
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        url = _url(ctx)
        if url is None:
            return NO_API_URL + " (the step would be skipped)"
        samples = param_int(ctx.step, "samples", 1) or 1
        method = param_str(ctx.step, "method", "GET")
        return f"{method} {url} ×{samples} and record status and latency (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        url = _url(ctx)
        if url is None:
            return StepResult(Outcome.SKIPPED, NO_API_URL)
        expect = param_str(ctx.step, "expect", "any") or "any"
        samples = param_int(ctx.step, "samples", 1) or 1
        method = param_str(ctx.step, "method", "GET") or "GET"
        body_text = param_str(ctx.step, "body")
        try:
            body = json.loads(body_text) if body_text else None
        except ValueError as exc:
            raise StepFailed(f"step {ctx.step.id}: parameter body is not JSON ({exc})") from exc
        async with http_client() as http:
            if samples > 1:
                summary = await http.latency_sample(url, n=samples, method=method)
                evidence = {"requests": str(summary.count), "errors": str(summary.errors)}
                for label, value in (("p50", summary.p50), ("p95", summary.p95), ("max", summary.max)):
                    evidence[label] = "n/a" if value is None else f"{value * 1000:.0f} ms"
                message = (f"{method} {url} ×{summary.count}: {summary.errors} errors, p50 {evidence['p50']}, "
                           f"p95 {evidence['p95']}")
                if expect != "any" and summary.errors:
                    raise StepFailed(message)
                return StepResult(Outcome.DONE, message, evidence)
            result = await http.probe(url, method=method, json=body)
        evidence = {"status": str(result.status or "none"), "latency": f"{result.latency_seconds * 1000:.0f} ms"}
        message = _answer(result)
        if expect == "ok" and not result.ok:
            raise StepFailed(message)
        if expect == "no-5xx" and (result.status is None or result.status >= 500):
            raise StepFailed(message)
        return StepResult(Outcome.DONE, message, evidence)


class SmokeTest:
    """`for endpoint in health trades analytics auth; do curl -f …/api/v1/$endpoint || echo FAILED; done`."""

    name = StepAction.SMOKE_TEST
    destructive = False

    def _endpoints(self, ctx: StepContext) -> list[str]:
        raw = param_str(ctx.step, "endpoints", "health,trades,analytics,auth") or ""
        return [e.strip() for e in raw.split(",") if e.strip()]

    async def describe(self, ctx: StepContext) -> str:
        if ctx.spec.target.api_url is None:
            return NO_API_URL + " (the step would be skipped)"
        endpoints = ",".join(self._endpoints(ctx))
        return f"GET {ctx.spec.target.api_url.rstrip('/')}/api/v1/{{{endpoints}}}; every one must answer below 400"

    async def run(self, ctx: StepContext) -> StepResult:
        base = ctx.spec.target.api_url
        if base is None:
            return StepResult(Outcome.SKIPPED, NO_API_URL)
        endpoints = self._endpoints(ctx)
        async with http_client() as http:
            results = await http.smoke_test(base, endpoints)
        evidence = {e: str(r.status or "no answer") for e, r in zip(endpoints, results, strict=True)}
        failed = [f"{e} ({evidence[e]})" for e, r in zip(endpoints, results, strict=True) if not r.ok]
        if failed:
            raise StepFailed(f"smoke test FAILED: {', '.join(failed)}")
        return StepResult(Outcome.DONE, f"smoke test passed: {', '.join(endpoints)} all answered", evidence)


class CertificateCheck:
    """The API certificate's notAfter and the days left (renewal itself is a human's, or cert-manager's, job)."""

    name = StepAction.CERTIFICATE_CHECK
    destructive = False

    def _where(self, ctx: StepContext) -> tuple[str, int] | None:
        host = param_str(ctx.step, "host")
        return None if host is None else (host, param_int(ctx.step, "port", 443) or 443)

    async def describe(self, ctx: StepContext) -> str:
        where = self._where(ctx)
        if where is None:
            return NO_API_URL + " (the step would be skipped)"
        return f"read the certificate of {where[0]}:{where[1]} and report days until it expires (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        where = self._where(ctx)
        if where is None:
            return StepResult(Outcome.SKIPPED, NO_API_URL)
        api = ctx.spec.target.api_url
        if api is not None and urlsplit(api).scheme == "http" and where[0] == urlsplit(api).hostname:
            return StepResult(Outcome.SKIPPED, f"{api} is plain HTTP: there is no certificate to check")
        not_after = await certificate_not_after(*where)
        days = (not_after - ctx.runtime.clock.now()).total_seconds() / 86400
        warn = param_int(ctx.step, "warnDays", 14) or 14
        evidence = {"notAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "daysLeft": f"{days:.1f}"}
        if days < 0:
            verdict = "EXPIRED"
        elif days < warn:
            verdict = f"expires in {days:.1f} days (< {warn}): renew it"
        else:
            verdict = f"valid for {days:.1f} more days"
        return StepResult(Outcome.DONE, f"certificate of {where[0]}:{where[1]} {verdict}", evidence)
