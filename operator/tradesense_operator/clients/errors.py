"""The clients' own error hierarchy: library exceptions are translated once, here, at the boundary.

Services and handlers only ever see these. `Unavailable` (and its subclasses) means "try again later";
everything else is a definite answer that retrying will not change.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error a client raises. Messages never contain secrets or connection strings."""


class Unavailable(ClientError):
    """Transient: connection refused, reset, timeout, 429, 5xx. Retrying later may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Timeout(Unavailable):
    """The remote did not answer within the allowed time."""


class NotFound(ClientError):
    """The object, key, table or endpoint does not exist."""


class Conflict(ClientError):
    """Optimistic-concurrency conflict or already-exists; re-read and retry the decision."""


class Invalid(ClientError):
    """The remote rejected the request as invalid (e.g. HTTP 422); retrying the same request will fail again."""


class Forbidden(ClientError):
    """Authentication or authorisation failed (401/403)."""


class ExtensionMissing(ClientError):
    """A server-side feature the call needs is not installed (e.g. pg_stat_statements)."""
