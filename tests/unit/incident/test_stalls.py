"""The API call behind a client error, named in RBAC terms, and the bounded message a Stalled condition carries."""

from __future__ import annotations

import pytest

from tradesense_operator.clients.errors import Forbidden, Invalid, Unavailable
from tradesense_operator.services.incidents.stalls import MESSAGE_CHARS, ApiCall, explain, parse_call


@pytest.mark.parametrize(("message", "call"), [
    ("GET /apis/coordination.k8s.io/v1/namespaces/default/leases/tradesense-remediation: forbidden",
     ApiCall("get", "leases.coordination.k8s.io", "default", "tradesense-remediation")),
    ("GET /api/v1/namespaces/app/pods?labelSelector=app%3Dbackend: boom", ApiCall("list", "pods", "app", None)),
    ("POST /apis/coordination.k8s.io/v1/namespaces/app/leases: x",
     ApiCall("create", "leases.coordination.k8s.io", "app", None)),
    ("PATCH /apis/ops.tradesense.io/v1alpha1/namespaces/ops/tradesenseincidents/i1/status: bad",
     ApiCall("patch", "tradesenseincidents.ops.tradesense.io/status", "ops", "i1")),
    ("GET /api/v1/namespaces/app: no", ApiCall("get", "namespaces", None, "app")),
    ("DELETE /apis/apps/v1/namespaces/app/deployments/web: no", ApiCall("delete", "deployments.apps", "app", "web")),
])
def test_the_call_is_named_as_rbac_names_it(message: str, call: ApiCall) -> None:
    assert parse_call(message) == call


def test_a_message_that_is_not_a_request_names_no_call() -> None:
    assert parse_call("connection refused") is None
    reason, message = explain(Unavailable("connection refused"))
    assert reason == "ApiUnavailable"
    assert message == "the API server did not complete a Kubernetes API call: Unavailable: connection refused; retrying"


def test_forbidden_names_the_permission_to_grant() -> None:
    reason, message = explain(Forbidden(
        "GET /apis/coordination.k8s.io/v1/namespaces/default/leases/tradesense-remediation: "
        'leases.coordination.k8s.io "tradesense-remediation" is forbidden'))
    assert reason == "Forbidden"
    assert message.startswith("forbidden: the operator may not get leases.coordination.k8s.io tradesense-remediation "
                              "in namespace default; grant `get` on `leases.coordination.k8s.io` in namespace default")


def test_a_huge_server_message_is_bounded() -> None:
    reason, message = explain(Invalid("PUT /api/v1/namespaces/a/configmaps/b: " + "x" * 50_000))
    assert reason == "Invalid"
    assert len(message) <= MESSAGE_CHARS
    assert message.startswith("the API server rejected update configmaps b in namespace a as invalid: xxx")
