"""Blocking loopback HTTP helpers for readiness probes and test set-up (no client library, no event loop)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def _request(url: str, *, data: bytes | None, method: str, timeout: float) -> bytes:
    if not url.startswith("http://"):
        raise ValueError(f"only plain http:// loopback URLs are probed, got {url!r}")
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310 - scheme checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        return bytes(response.read())


def http_ok(url: str, *, method: str = "GET", timeout: float = 1.0) -> bool:
    """Whether `url` answers 2xx (any error counts as no)."""
    try:
        _request(url, data=None, method=method, timeout=timeout)
    except (urllib.error.URLError, OSError):
        return False
    return True


def http_json(url: str, *, body: Any = None, method: str = "GET", timeout: float = 5.0) -> Any:
    """GET/POST JSON and decode the answer (None for an empty body); HTTP errors raise urllib's HTTPError."""
    raw = _request(url, data=json.dumps(body).encode() if body is not None else None, method=method, timeout=timeout)
    return json.loads(raw) if raw else None
