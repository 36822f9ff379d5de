"""Password hashes and HS256 tokens for the stand-in app's login, built on the standard library only.

The runbook's P2 "Authentication Issues" checks the login endpoint and the JWT signing key; rotating that
key must invalidate tokens signed with the old one, which is what `TokenSigner` lets tests observe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

_SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 10_000


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed with the current key (reason says which)."""


def hash_password(password: str, *, salt: str | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<hex digest>`, the format the users table stores."""
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    salt = salt if salt is not None else secrets.token_hex(8)
    if "$" in salt:
        raise ValueError("salt must not contain '$'")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"{_SCHEME}${iterations}${salt}${digest}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored hash; an unparsable hash never matches."""
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != _SCHEME or not parts[1].isdigit():
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), parts[2].encode(), int(parts[1])).hex()
    return hmac.compare_digest(digest, parts[3])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies compact HS256 JWTs; the key can be swapped at runtime (secret rotation)."""

    def __init__(self, key: bytes | str | None = None, *, ttl_seconds: int = 3600) -> None:
        self._key = self._as_bytes(key) if key is not None else secrets.token_bytes(32)
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _as_bytes(key: bytes | str) -> bytes:
        raw = key.encode() if isinstance(key, str) else key
        if len(raw) < 8:
            raise ValueError("signing key must be at least 8 bytes")
        return raw

    def rotate(self, key: bytes | str) -> None:
        """Use a new key from now on; tokens signed with the old one stop verifying."""
        self._key = self._as_bytes(key)

    def issue(self, subject: str, *, now: float | None = None, **claims: Any) -> str:
        """A token for `subject` valid for `ttl_seconds`."""
        issued = int(now if now is not None else time.time())
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = {"sub": subject, "iat": issued, "exp": issued + self.ttl_seconds, **claims}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest())
        return f"{header}.{body}.{signature}"

    def verify(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The token's claims, or `InvalidToken` (the message never contains the token or the key)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            raise InvalidToken("bad signature")
        try:
            claims = json.loads(_unb64(parts[1]))
        except ValueError as exc:
            raise InvalidToken("malformed payload") from exc
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
            raise InvalidToken("malformed payload")
        if claims["exp"] <= (now if now is not None else time.time()):
            raise InvalidToken("expired")
        return claims
