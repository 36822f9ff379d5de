"""certificate-expiring runbook: the API certificate's notAfter read over a real TLS handshake and compared
with the warning window; plain-HTTP targets are skipped with the reason."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome

HttpsApi = Callable[[datetime], AbstractAsyncContextManager[str]]


@pytest.fixture
def https_api(tmp_path: Path) -> HttpsApi:
    """`async with https_api(not_after) as url`: an HTTPS listener whose certificate expires at `not_after`."""

    @asynccontextmanager
    async def serve(not_after: datetime) -> AsyncIterator[str]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(not_after - timedelta(days=90))
                .not_valid_after(not_after).sign(key, hashes.SHA256()))
        (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "tls.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        app = web.Application()
        app.router.add_get("/", lambda _: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        try:
            yield f"https://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    return serve


async def test_certificate_close_to_expiry_is_reported_with_days_left(
    tradesense: TradesenseEnv, https_api: HttpsApi
) -> None:
    env = tradesense
    not_after = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    async with https_api(not_after) as url:
        spec = env.spec("certificate-expiring", target={"apiUrl": url})
        results = await env.run_plan(spec)
    check = results["certificate"]
    assert check.evidence["notAfter"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert 4.9 < float(check.evidence["daysLeft"]) <= 5.0
    assert "(< 14): renew it" in check.message
    assert results["notify-renewal"].outcome is Outcome.SKIPPED  # no spec.notification


async def test_plain_http_api_has_no_certificate_to_check(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("certificate-expiring")  # the stand-in app speaks plain HTTP
    result = await env.run_step(spec, env.step(spec, "certificate"))
    assert result.outcome is Outcome.SKIPPED
    assert "plain HTTP" in result.message
