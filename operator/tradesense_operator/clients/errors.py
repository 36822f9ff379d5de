"""The clients' own error hierarchy: every library exception is translated into one of these, once.

Callers above the clients layer (services, handlers) decide retry policy from the class alone:
`Unavailable` (and its subclass `Timeout`) is transient and worth retrying; everything else is not.
Messages never carry secrets (passwords, tokens, webhook URLs): each client scrubs before raising.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error a client raises; catch this to handle 'the outside world said no'."""


class Unavailable(ClientError):
    """The service could not be reached or refused to serve right now (connection refused, reset, shutting down).

    Transient by definition: the same call may succeed later, so callers retry with backoff.
    """


class Timeout(Unavailable):
    """The call did not finish within its deadline; transient like any other unavailability."""


class NotFound(ClientError):
    """The named object (database, table, key, resource) does not exist; retrying will not create it."""


class Conflict(ClientError):
    """The object exists in a state that contradicts the request (e.g. same name, different definition)."""


class Invalid(ClientError):
    """The request itself is malformed (bad identifier, value out of range); the message names the field."""


class Forbidden(ClientError):
    """Authentication or authorisation failed; fixing credentials or RBAC is a human's job, not a retry's."""


class ExtensionMissing(ClientError):
    """A server-side extension the call relies on (e.g. pg_stat_statements) is not installed or not loaded."""
