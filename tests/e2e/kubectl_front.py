"""A TLS front for the emulated API server, so the real `kubectl` can talk to it.

Two things stand between kubectl and the emulator (requests-H1.md): client-go never sends a bearer token over
plain HTTP (every call is 401), and `kubectl get` shows the server-side `Table` a real API server renders from a
CRD's `additionalPrinterColumns` — without it, only NAME and AGE. This front terminates TLS with a throwaway CA,
adds the emulator's token, and renders Tables the way kube-apiserver's CRD table convertor does (Name, then
each printer column by JSONPath; `date` columns as an age; missing values as null, which kubectl prints as
`<none>`). Everything else — discovery, get, list, describe's Event query, apply's patches, watches — passes
through unchanged, so kubectl's own output is what gets recorded and asserted.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import re
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TABLE_MEDIA = re.compile(r"as=Table;\s*v=v1;\s*g=meta\.k8s\.io")
_HOP_HEADERS = {"host", "authorization", "content-length", "transfer-encoding", "connection", "accept-encoding"}


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost that is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradesense-emulated-apiserver")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: `.a.b`, `[n]`, `[?(@.k=="v")]` (first match). None if absent."""
    current: Any = obj
    for token in re.findall(r"\.([A-Za-z0-9_-]+)|\[\?\(@\.([A-Za-z0-9_]+)==\"([^\"]*)\"\)\]|\[(\d+)\]", path):
        key, filter_key, filter_value, index = token
        if key:
            current = current.get(key) if isinstance(current, dict) else None
        elif filter_key:
            matches = [i for i in current or [] if isinstance(i, dict) and str(i.get(filter_key)) == filter_value] \
                if isinstance(current, list) else []
            current = matches[0] if matches else None
        else:
            current = current[int(index)] if isinstance(current, list) and int(index) < len(current) else None
        if current is None:
            return None
    return current


def human_age(timestamp: str, now: dt.datetime) -> str:
    """kube-apiserver's HumanDuration for a `date` column."""
    then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def to_table(body: dict[str, Any], columns: list[dict[str, Any]], now: dt.datetime) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of one object or a list, per the CRD's printer columns."""
    items = body.get("items") if "items" in body else [body]
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                    "description": "Name must be unique within a namespace."}]
    definitions += [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in columns]
    rows = []
    for item in items or []:
        cells: list[Any] = [item["metadata"]["name"]]
        for column in columns:
            value = jsonpath(item, column["jsonPath"])
            if value is not None and column.get("type") == "date":
                value = human_age(str(value), now)
            cells.append(value)
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                "metadata": item["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion", "")},
            "columnDefinitions": definitions, "rows": rows}


class KubectlFront:
    """HTTPS on 127.0.0.1 in front of `upstream` (http URL + token); `kubeconfig()` is what kubectl should use."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.token = token
        self._dir = Path(tempfile.mkdtemp(prefix="kubectl-front-"))
        self._cert, self._key = _certificate(self._dir)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kubectl-front", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._columns: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.url = ""

    def start(self) -> KubectlFront:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert, self._key)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> KubectlFront:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig trusting this front's CA; the token in it is the emulator's (sent over TLS now)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulated",
            "clusters": [{"name": "emulated", "cluster": {
                "server": self.url, "certificate-authority-data": base64.b64encode(self._cert.read_bytes()).decode()}}],
            "users": [{"name": "emulated", "user": {"token": self.token}}],
            "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "emulated",
                                                          "namespace": namespace}}],
        }), encoding="utf-8")
        path.chmod(0o600)
        return path

    async def _printer_columns(self, group: str, plural: str) -> list[dict[str, Any]] | None:
        key = (group, plural)
        if key not in self._columns:
            assert self._session is not None
            url = f"{self.upstream}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}"
            async with self._session.get(url) as answer:
                if answer.status != 200:
                    return None
                crd = await answer.json()
            served = next((v for v in crd["spec"]["versions"] if v.get("served")), {})
            self._columns[key] = list(served.get("additionalPrinterColumns") or [])
        return self._columns[key]

    async def _table_columns(self, request: web.Request) -> list[dict[str, Any]] | None:
        """The printer columns when kubectl asks for a Table of a custom resource (GET), else None."""
        if request.method != "GET" or not TABLE_MEDIA.search(request.headers.get("Accept", "")):
            return None
        if request.query.get("watch") in ("true", "1"):
            return None
        parts = [p for p in request.path.split("/") if p]
        if len(parts) < 4 or parts[0] != "apis" or "." not in parts[1]:
            return None
        rest = parts[3:]
        if len(rest) >= 2 and rest[0] == "namespaces":
            rest = rest[2:]
        if not rest or len(rest) > 2:  # a subresource: no table
            return None
        columns = await self._printer_columns(parts[1], rest[0])
        return columns if columns else None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        columns = await self._table_columns(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        if columns is not None:
            headers["Accept"] = "application/json"
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body or None, timeout=aiohttp.ClientTimeout(total=None)) as answer:
            if columns is not None and answer.status == 200:
                table = to_table(await answer.json(), columns, dt.datetime.now(dt.UTC))
                return web.json_response(table)
            response = web.StreamResponse(status=answer.status, headers={
                "Content-Type": answer.headers.get("Content-Type", "application/json")})
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
