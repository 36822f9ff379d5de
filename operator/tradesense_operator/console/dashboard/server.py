"""`kubectl tradesense dashboard`: a local web page over the user's own API session.

Owns the HTTP surface (the page and its static files, JSON reads, a server-sent-event stream fed by a
Kubernetes watch, approve/cancel POSTs) and its guards: it listens on loopback, answers only requests
whose Host is that address (no DNS rebinding), and acts only on POSTs carrying the per-run token embedded
in the page (another site cannot forge one). Every action is the same patch `kubectl tradesense` sends,
with the same refusals; an API server refusal (RBAC, conflict) is passed to the page verbatim.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import webbrowser
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from tradesense_operator.clients.errors import ClientError, Conflict, Forbidden, Invalid, NotFound
from tradesense_operator.console.actions import Refused, approve_patch, cancel_patch
from tradesense_operator.console.cluster import ConsoleCluster
from tradesense_operator.console.tree import short_evidence
from tradesense_operator.console.view import IncidentView, format_duration, incident_view, newest_first

TOKEN_HEADER = "X-Tradesense-Token"  # noqa: S105  # a header name, not a secret
_STATIC = resources.files(__package__) / "static"
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def incident_json(view: IncidentView, now: datetime) -> dict[str, Any]:
    """What the page shows of an incident, computed here so the page stays a thin renderer."""
    return {
        "name": view.name,
        "runbook": view.spec.runbook.value,
        "severity": view.spec.severity.value,
        "phase": view.phase.value,
        "message": view.status.message,
        "respondBy": view.respond_by_text(now),
        "created": view.created.isoformat() if view.created else None,
        "terminal": view.terminal,
        "cancelRequested": view.spec.cancel,
        "dryRun": view.spec.dry_run,
        "currentStep": view.status.current_step,
        "steps": [{
            "id": s.id,
            "action": s.planned.action.value,
            "target": s.planned.target,
            "description": s.planned.description,
            "state": s.state.value,
            "attempts": s.status.attempts,
            "allowedAttempts": s.planned.retries + 1,
            "duration": format_duration(d) if (d := s.duration(now)) is not None else "",
            "message": s.status.message,
            "waitsFor": s.waits_for(now, view.name),
            "evidence": dict(sorted(s.status.evidence.items())),
            "evidenceShort": short_evidence(s.status.evidence),
            "destructive": s.planned.destructive,
            "approved": s.approved,
        } for s in view.steps],
    }


def _policy_json(body: dict[str, Any]) -> dict[str, Any]:
    return {"name": (body.get("metadata") or {}).get("name", ""), "spec": body.get("spec") or {},
            "status": body.get("status") or {}}


def _error_status(exc: ClientError) -> int:
    for kind, code in ((NotFound, 404), (Conflict, 409), (Forbidden, 403), (Invalid, 422)):
        if isinstance(exc, kind):
            return code
    return 502


class Dashboard:
    """The web application bound to one user session and namespace."""

    def __init__(self, cluster: ConsoleCluster, *, token: str | None = None) -> None:
        self.cluster = cluster
        self.token = token or secrets.token_urlsafe(24)
        self.allowed_hosts: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        """The aiohttp application (routes and the Host guard)."""
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{file}", self._static)
        app.router.add_get("/api/overview", self._overview)
        app.router.add_get("/api/incidents/{name}", self._incident)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/incidents/{name}/approve", self._approve)
        app.router.add_post("/api/incidents/{name}/cancel", self._cancel)
        return app

    async def start(self, address: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the page's URL (the port is the one the OS chose when 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.allowed_hosts = {f"{address}:{bound}", f"localhost:{bound}"}
        self.url = f"http://{address}:{bound}/"
        return self.url

    async def stop(self) -> None:
        """Stop listening and end the event streams."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- guards ----------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.host not in self.allowed_hosts:
            return web.json_response({"error": f"unexpected Host {request.host!r}"}, status=403)
        if request.method == "POST" and not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return web.json_response({"error": "missing or wrong dashboard token"}, status=403)
        response: web.StreamResponse = await handler(request)
        return response

    # -- pages -----------------------------------------------------------------------------------

    async def _index(self, _request: web.Request) -> web.Response:
        page = (_STATIC / "index.html").read_text(encoding="utf-8")
        page = page.replace("{{TOKEN}}", self.token).replace("{{NAMESPACE}}", self.cluster.namespace)
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        suffix = name[name.rfind("."):] if "." in name else ""
        resource = _STATIC / name
        if "/" in name or suffix not in _CONTENT_TYPES or name == "index.html" or not resource.is_file():
            raise web.HTTPNotFound()
        return web.Response(text=resource.read_text(encoding="utf-8"), content_type=_CONTENT_TYPES[suffix])

    # -- reads -----------------------------------------------------------------------------------

    async def _overview(self, _request: web.Request) -> web.Response:
        try:
            items = await self.cluster.incidents()
        except ClientError as exc:
            return web.json_response({"error": str(exc)}, status=_error_status(exc))
        policies: dict[str, list[dict[str, Any]]] = {}
        for key, fetch in (("backupPolicies", self.cluster.backup_policies),
                           ("scalingPolicies", self.cluster.scaling_policies)):
            try:
                policies[key] = [_policy_json(p) for p in await fetch()]
            except ClientError:
                policies[key] = []
        now = datetime.now(UTC)
        views = newest_first([incident_view(i) for i in items])
        return web.json_response({"namespace": self.cluster.namespace,
                                  "incidents": [incident_json(v, now) for v in views], **policies})

    async def _incident(self, request: web.Request) -> web.Response:
        try:
            body = await self.cluster.incident(request.match_info["name"])
        except ClientError as exc:
            return web.json_response({"error": str(exc)}, status=_error_status(exc))
        return web.json_response(incident_json(incident_view(body), datetime.now(UTC)))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `snapshot` with every incident, then `incident`/`deleted` per watch event."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            async for kind, obj in self.cluster.watch_incidents():
                now = datetime.now(UTC)
                data: Any
                if kind == "SNAPSHOT":
                    views = newest_first([incident_view(i) for i in obj["items"]])
                    event, data = "snapshot", [incident_json(v, now) for v in views]
                elif kind == "DELETED":
                    event, data = "deleted", {"name": obj["metadata"]["name"]}
                else:
                    event, data = "incident", incident_json(incident_view(obj), now)
                await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except ClientError as exc:
            await response.write(f"event: failure\ndata: {json.dumps({'error': str(exc)})}\n\n".encode())
        return response

    # -- actions ---------------------------------------------------------------------------------

    async def _act(self, name: str, make_patch: Any) -> web.Response:
        try:
            body = await self.cluster.incident(name)
            updated = await self.cluster.patch_incident(name, make_patch(body))
        except Refused as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except ClientError as exc:
            return web.json_response({"error": str(exc)}, status=_error_status(exc))
        return web.json_response(incident_json(incident_view(updated), datetime.now(UTC)))

    async def _approve(self, request: web.Request) -> web.Response:
        try:
            steps = (await request.json()).get("steps")
        except ValueError:
            steps = None
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            return web.json_response({"error": "body must be {\"steps\": [step ids]}"}, status=400)
        return await self._act(request.match_info["name"], lambda body: approve_patch(body, steps))

    async def _cancel(self, request: web.Request) -> web.Response:
        return await self._act(request.match_info["name"], cancel_patch)


async def serve(cluster: ConsoleCluster, *, address: str, port: int, open_browser: bool) -> None:
    """Run until interrupted, printing the URL (and opening it when asked)."""
    dashboard = Dashboard(cluster)
    url = await dashboard.start(address, port)
    print(f"Dashboard for namespace {cluster.namespace}: {url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        await asyncio.Event().wait()
    finally:
        await dashboard.stop()
