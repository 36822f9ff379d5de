"""API errors as the Kubernetes API server reports them: an HTTP code plus a `Status` body.

Every failure path in the emulator raises `ApiError`, so clients (kopf, kubernetes_asyncio, kubectl)
see the same `Status` objects and codes a real server sends, and tests can assert on `reason`.

Shapes failures only; must not decide when a request fails.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request failure carrying the Kubernetes `Status` fields."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The `meta/v1 Status` object for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', details=_details(plural, group, name)
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists', details=_details(plural, group, name)
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": '
        "the object has been modified; please apply your changes to the latest version and try again",
        details=_details(plural, group, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
        f'application/strategic-merge-patch+json (got "{content_type}")',
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """A 422 `Invalid` error; each cause is (reason, field, message) in the API server's wording."""
    qualified = f"{kind}.{group}" if group else kind
    summary = ", ".join(f"{field}: {message}" if field else message for _, field, message in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    details = _details(kind, group, name)
    details["causes"] = [{"reason": reason, "message": message, "field": field} for reason, field, message in causes]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details=details)
