"""Reading one key of a Kubernetes Secret: the single place secret values enter the operator.

Every value read here is registered with the log redaction filter before it is returned, so an accident
later (a library quoting a DSN in an exception, a debug line) cannot print it. Errors name the Secret and
the key, never the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from tradesense_operator.clients.errors import Invalid, NotFound
from tradesense_operator.clients.kube import SECRETS, KubeClient
from tradesense_operator.observability.redaction import SECRETS as REDACTED


async def read_secret_key(kube: KubeClient, namespace: str, name: str, key: str) -> str:
    """The decoded text of `data[key]` (or `stringData[key]`); NotFound / Invalid say which Secret and key."""
    secret = await kube.get_or_none(SECRETS, name, namespace)
    if secret is None:
        raise NotFound(f"secret {namespace}/{name} not found")
    data: Mapping[str, Any] = secret.get("data") or {}
    string_data: Mapping[str, Any] = secret.get("stringData") or {}
    if key in data and data[key] is not None:
        try:
            value = base64.b64decode(str(data[key]), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Invalid(f"secret {namespace}/{name} key {key!r} is not valid base64 UTF-8 text") from exc
    elif key in string_data and string_data[key] is not None:
        value = str(string_data[key])
    else:
        raise NotFound(f"secret {namespace}/{name} has no key {key!r}")
    register_secret(value)
    return value


def register_secret(value: str) -> None:
    """Mask this value in every log line from now on (also for values the operator generates, e.g. rotation)."""
    REDACTED.register(value)
    stripped = value.strip()
    if stripped != value:
        REDACTED.register(stripped)
