"""Last line of defence for secret hygiene: values the operator reads from Secrets are masked in logs.

Code never logs secrets on purpose; this catches accidents (an exception message quoting a DSN, a
library's debug line). The registry is process-wide because logging is: a filter cannot see memo.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words; such secrets are rejected elsewhere


class SecretRegistry:
    """Known secret values to mask."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str | bytes) -> None:
        """Remember a secret value (and its UTF-8 text when bytes)."""
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        if len(text) >= _MIN_LENGTH:
            with self._lock:
                self._values.add(text)

    def redact(self, text: str) -> str:
        """Replace every known value in text."""
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


SECRETS = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Masks registered secret values in the rendered message and exception text of every record."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self._registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        redacted = self._registry.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._registry.redact(exc_text)
            record.exc_info = None
        return True
