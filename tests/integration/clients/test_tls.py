"""certificate_not_after against local servers.

Covers: the notAfter of a self-signed certificate served over HTTPS by aiohttp (exact value, whatever SNI
name is asked for), an already-expired certificate (still readable: that is when it matters most), a
plain-HTTP port (Invalid: no TLS), a closed port (Unavailable) and a silent peer (Timeout).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tradesense_operator.clients.errors import Invalid, Timeout, Unavailable
from tradesense_operator.clients.tls import certificate_not_after
from tradesense_sandbox.servers import free_port

from .conftest import ServeApp

HttpsServer = Callable[[datetime], Awaitable[int]]


def _self_signed(directory: Path, not_after: datetime) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.tradesense.test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.tradesense.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{certificate.serial_number}.crt", directory / f"{certificate.serial_number}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[HttpsServer]:
    """Start an HTTPS aiohttp server whose self-signed certificate expires at the given instant; returns its port."""
    runners: list[web.AppRunner] = []

    async def start(not_after: datetime) -> int:
        app = web.Application()
        app.router.add_get("/", _ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path, not_after)).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_reads_not_after_of_a_self_signed_certificate(https_server: HttpsServer) -> None:
    expiry = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    port = await https_server(expiry)
    assert await certificate_not_after("127.0.0.1", port) == expiry
    assert await certificate_not_after("127.0.0.1", port, server_hostname="api.tradesense.com") == expiry


async def test_reads_an_already_expired_certificate(https_server: HttpsServer) -> None:
    expired = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    port = await https_server(expired)
    assert await certificate_not_after("127.0.0.1", port) == expired


async def test_plain_http_port_is_invalid(serve_app: ServeApp) -> None:
    app = web.Application()
    base = await serve_app(app)
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(Invalid, match="did not complete a TLS handshake"):
        await certificate_not_after("127.0.0.1", port, timeout=5)


async def test_closed_port_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="cannot connect"):
        await certificate_not_after("127.0.0.1", free_port(), timeout=5)


async def test_silent_peer_times_out() -> None:
    release = asyncio.Event()

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(Timeout, match=r"did not finish within 0\.2s"):
            await certificate_not_after("127.0.0.1", port, timeout=0.2)
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_rejects_bad_arguments() -> None:
    with pytest.raises(Invalid, match=r"^port:"):
        await certificate_not_after("example.com", 0)
