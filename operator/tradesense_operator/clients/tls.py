"""Certificate expiry check for the certificate-expiring alert: when does the served certificate stop being valid?

Verification is off on purpose: the question is "when does this certificate expire", and it must be answerable
for certificates that are already expired, self-signed or issued for another name — exactly the ones an
operator needs to see. With verification off Python's `getpeercert()` returns nothing parsed, so the DER
bytes are parsed with `cryptography`. Must not trust the connection for anything else, nor decide whether
the expiry is too close (the probe step does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import datetime

from tradesense_operator.clients.errors import Invalid, Timeout, Unavailable


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def certificate_not_after(
    host: str, port: int = 443, server_hostname: str | None = None, timeout: float = 10.0
) -> datetime:
    """Handshake with `host:port` (SNI `server_hostname`, default `host`) and return the leaf's notAfter in UTC."""
    if not host:
        raise Invalid("host: must not be empty")
    if not 0 < port < 65536:
        raise Invalid(f"port: must be between 1 and 65535, got {port}")
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                host, port, ssl=_unverified_context(), server_hostname=server_hostname or host
            )
    except TimeoutError as exc:
        raise Timeout(f"TLS handshake with {where} did not finish within {timeout}s") from exc
    except ssl.SSLError as exc:
        raise Invalid(f"{where} did not complete a TLS handshake: {exc.reason or exc}") from exc
    except OSError as exc:
        raise Unavailable(f"cannot connect to {where}: {exc.strerror or exc}") from exc
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):  # the peer may drop first; we already have the certificate
            await writer.wait_closed()
    if not der:
        raise Invalid(f"{where} presented no certificate")
    # Imported here: cryptography's x509 bindings cost ~7 MB of RSS in every replica, and only this probe needs them.
    from cryptography import x509  # noqa: PLC0415

    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError as exc:
        raise Invalid(f"{where} presented a certificate that cannot be parsed: {exc}") from exc
