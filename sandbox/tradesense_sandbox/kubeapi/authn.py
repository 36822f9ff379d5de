"""Who is calling the emulated API server: bearer tokens, the TokenRequest API and the review APIs built on them.

Owns the token table (the admin token of the emulator's kubeconfig, ServiceAccount tokens minted by
`POST …/serviceaccounts/{name}/token` or by the cluster facade, each with its expiry on the emulated clock)
and the answers of TokenRequest, SelfSubjectReview (`kubectl auth whoami`) and SelfSubjectAccessReview
(`kubectl auth can-i`), shaped like kube-apiserver's. It records, per token, the requests RBAC let through,
so a test can compare what a ServiceAccount used with what its Roles grant. It does not decide
authorization (rbac.py) and serves no HTTP (server.py).
"""

from __future__ import annotations

import datetime
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.errors import ApiError, invalid, not_found
from tradesense_sandbox.kubeapi.rbac import Authorizer, Request, User

ADMIN_USERNAME = "emulated-admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")
MIN_TOKEN_SECONDS = 600       # kube-apiserver refuses shorter TokenRequests ("less than 10 minutes")
MAX_TOKEN_SECONDS = 2**32     # and longer ones
DEFAULT_TOKEN_SECONDS = 3600
AUDIENCE = "https://kubernetes.default.svc.cluster.local"
AUTHN_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class Caller:
    """An authenticated request's identity: the admin (service_account None) or a ServiceAccount."""

    token: str
    service_account: User | None

    @property
    def username(self) -> str:
        return self.service_account.username if self.service_account else ADMIN_USERNAME

    @property
    def groups(self) -> tuple[str, ...]:
        return self.service_account.groups if self.service_account else ADMIN_GROUPS


@dataclass(frozen=True)
class _Issued:
    user: User
    expires: datetime.datetime | None


class Tokens:
    """Bearer token → caller, plus what each ServiceAccount token was authorized to do (thread-safe)."""

    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self._issued: dict[str, _Issued] = {}
        self._used: dict[str, set[Request]] = {}
        self._lock = threading.Lock()

    def issue(self, user: User, seconds: int | None = None) -> tuple[str, datetime.datetime | None]:
        """A new token for `user`, valid for `seconds` of emulated time (None: until the cluster stops)."""
        token = secrets.token_urlsafe(32)
        expires = clock.now() + datetime.timedelta(seconds=seconds) if seconds is not None else None
        with self._lock:
            self._issued[token] = _Issued(user, expires)
        return token, expires

    def caller(self, authorization: str) -> Caller | None:
        """The caller named by an `Authorization: Bearer …` header; None for a missing, unknown or expired token."""
        if not authorization.startswith("Bearer "):
            return None
        token = authorization.removeprefix("Bearer ")
        if token == self.admin_token:
            return Caller(token, None)
        with self._lock:
            issued = self._issued.get(token)
        if issued is None or (issued.expires is not None and clock.now() >= issued.expires):
            return None
        return Caller(token, issued.user)

    def record(self, token: str, request: Request) -> None:
        with self._lock:
            self._used.setdefault(token, set()).add(request)

    def used(self, token: str) -> set[Request]:
        """Every request RBAC authorized for this token so far."""
        with self._lock:
            return set(self._used.get(token, ()))


def _invalid_seconds(why: str) -> ApiError:
    return invalid("TokenRequest", AUTHN_GROUP, "", [("FieldValueInvalid", "spec.expirationSeconds",
                                                      f"Invalid value: {why}")])


def token_request(tokens: Tokens, service_account: dict[str, Any] | None, namespace: str, name: str,
                  body: Any) -> dict[str, Any]:
    """`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: a TokenRequest with status.token filled in."""
    if service_account is None:
        raise not_found("serviceaccounts", "", name)
    spec = dict((body or {}).get("spec") or {}) if isinstance(body, dict) else {}
    seconds = spec.get("expirationSeconds", DEFAULT_TOKEN_SECONDS)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise _invalid_seconds(f"{seconds!r}: must be an integer")
    if seconds < MIN_TOKEN_SECONDS:
        raise _invalid_seconds(f"{seconds}: may not specify a duration less than 10 minutes")
    if seconds > MAX_TOKEN_SECONDS:
        raise _invalid_seconds(f"{seconds}: may not specify a duration larger than 2^32 seconds")
    token, expires = tokens.issue(User(namespace, name), seconds)
    assert expires is not None  # seconds is set
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{AUTHN_GROUP}/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {"audiences": list(spec.get("audiences") or [AUDIENCE]), "expirationSeconds": seconds,
                 "boundObjectRef": spec.get("boundObjectRef")},
        "status": {"token": token, "expirationTimestamp": clock.rfc3339(expires)},
    }


def self_subject_review(caller: Caller) -> dict[str, Any]:
    """`POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`)."""
    user_info: dict[str, Any] = {"username": caller.username, "groups": list(caller.groups)}
    if caller.service_account is not None:
        user_info["extra"] = {"authentication.kubernetes.io/credential-id": ["JTI=emulated"]}
    return {"kind": "SelfSubjectReview", "apiVersion": f"{AUTHN_GROUP}/v1", "metadata": {"creationTimestamp": None},
            "status": {"userInfo": user_info}}


_DISCOVERY_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


def self_subject_access_review(authorizer: Authorizer, caller: Caller, rbac: bool, body: Any) -> dict[str, Any]:
    """`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`): may I do this?"""
    spec = dict(body.get("spec") or {}) if isinstance(body, dict) else {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if not isinstance(resource, dict) and not isinstance(non_resource, dict):
        raise invalid("SelfSubjectAccessReview", "authorization.k8s.io", "", [
            ("FieldValueRequired", "spec.resourceAttributes",
             "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified")])
    user = caller.service_account
    if user is None or not rbac:
        allowed = True
    elif isinstance(resource, dict):
        allowed = authorizer.allowed(user, Request(
            str(resource.get("verb") or ""), str(resource.get("group") or ""), str(resource.get("resource") or ""),
            resource.get("subresource") or None, resource.get("namespace") or None, resource.get("name") or None))
    else:
        path = str((non_resource or {}).get("path") or "")
        allowed = (non_resource or {}).get("verb") == "get" and path.startswith(_DISCOVERY_PATHS)
    status: dict[str, Any] = {"allowed": allowed}
    if allowed and user is not None and rbac:
        status["reason"] = "RBAC: allowed"
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

