"""Authentication and authorization as a ServiceAccount sees them.

Covers: the TokenRequest API (`kubectl create token`: 201 with status.token, 404 for a missing ServiceAccount,
422 under ten minutes), SelfSubjectReview (`kubectl auth whoami`) naming the ServiceAccount and its groups, RBAC
from a Role and RoleBinding (verbs, resourceNames, subresources) with the Forbidden Status worded like the API
server's, authorization before existence (403, not 404, in a namespace that does not exist),
SelfSubjectAccessReview (`kubectl auth can-i`) answering from the same rules, and (emulator clock) token expiry.
On the emulator RBAC is switched on for these tests; a real cluster enforces it always.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conformance.conftest import REAL_CLUSTER, Api, Response, deployment, eventually
from tradesense_sandbox.kubeapi import EmulatedCluster

RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture
def enforced(request: pytest.FixtureRequest) -> None:
    """RBAC in force for ServiceAccount tokens (the emulator's is optional; a real cluster's is not)."""
    if not REAL_CLUSTER:
        cluster: EmulatedCluster = request.getfixturevalue("kube_cluster")
        cluster.enable_rbac()


async def _token(api: Api, ns: str, name: str, seconds: int = 3600) -> Response:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
    return await api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", body)


@pytest.fixture
async def robot(api: Api, ns: str, enforced: None) -> AsyncIterator[Api]:
    """ServiceAccount `robot` in `ns`, allowed to get/list pods, get the Secret `named` and get deployments
    (not their scale), through a Role and RoleBinding; an Api that authenticates with its token."""
    await api.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "robot"}})
    await api.ok("POST", f"{RBAC}/namespaces/{ns}/roles", {"metadata": {"name": "robot"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["named"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
    ]})
    await api.ok("POST", f"{RBAC}/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "robot"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "robot"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
    })
    token = await _token(api, ns, "robot")
    assert token.status == 201, token.body
    async with aiohttp.ClientSession() as session:
        robot_api = Api(session, api.host, {"Authorization": f"Bearer {token.body['status']['token']}"}, api.ssl)

        async def bound() -> bool:  # a real server's RBAC cache takes a moment to see the new binding
            return (await robot_api.get(f"/api/v1/namespaces/{ns}/pods")).status == 200

        await eventually(bound)
        yield robot_api


async def test_token_request_returns_a_token_for_the_service_account(api: Api, ns: str) -> None:
    await api.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "tr"}})
    answer = await _token(api, ns, "tr")
    assert answer.status == 201, answer.body
    assert answer.body["kind"] == "TokenRequest"
    assert answer.body["apiVersion"] == "authentication.k8s.io/v1"
    assert answer.body["spec"]["expirationSeconds"] == 3600
    assert answer.body["spec"]["audiences"]
    assert answer.body["status"]["token"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answer.body["status"]["expirationTimestamp"])


async def test_token_request_for_a_missing_service_account_is_not_found(api: Api, ns: str) -> None:
    answer = await _token(api, ns, "nobody")
    assert answer.status == 404
    assert answer.reason == "NotFound"
    assert answer.body["message"] == 'serviceaccounts "nobody" not found'


async def test_token_request_under_ten_minutes_is_invalid(api: Api, ns: str) -> None:
    await api.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "short"}})
    answer = await _token(api, ns, "short", seconds=60)
    assert answer.status == 422
    assert answer.reason == "Invalid"
    assert "spec.expirationSeconds" in answer.body["message"]
    assert "may not specify a duration less than 10 minutes" in answer.body["message"]


async def test_the_token_authenticates_as_the_service_account(robot: Api, ns: str) -> None:
    review = await robot.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    if review.status == 404:
        pytest.skip("this API server has no SelfSubjectReview (authentication.k8s.io/v1 is GA from 1.28)")
    assert review.status == 201, review.body
    user = review.body["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{ns}:robot"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"} <= set(user["groups"])


async def test_the_role_allows_its_verbs_and_forbids_the_rest_in_the_api_servers_words(robot: Api, ns: str) -> None:
    user = f"system:serviceaccount:{ns}:robot"
    missing = await robot.get(f"/api/v1/namespaces/{ns}/pods/absent")
    assert missing.status == 404  # authorized, then absent
    denied = await robot.delete(f"/api/v1/namespaces/{ns}/pods/absent")
    assert denied.status == 403
    assert denied.reason == "Forbidden"
    assert denied.body["message"] == (f'pods "absent" is forbidden: User "{user}" cannot delete resource "pods" in '
                                      f'API group "" in the namespace "{ns}"')
    assert denied.body["details"] == {"name": "absent", "kind": "pods"}
    listed = await robot.get(f"/api/v1/namespaces/{ns}/secrets")
    assert listed.status == 403
    assert listed.body["message"] == (f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API '
                                      f'group "" in the namespace "{ns}"')


async def test_resource_names_limit_a_rule_to_those_objects(api: Api, robot: Api, ns: str) -> None:
    for name in ("named", "other"):
        await api.ok("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": name}, "data": {}})
    assert (await robot.get(f"/api/v1/namespaces/{ns}/secrets/named")).status == 200
    other = await robot.get(f"/api/v1/namespaces/{ns}/secrets/other")
    assert other.status == 403
    assert 'secrets "other" is forbidden' in other.body["message"]


async def test_a_subresource_needs_its_own_rule(api: Api, robot: Api, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("scaled"))
    assert (await robot.get(f"/apis/apps/v1/namespaces/{ns}/deployments/scaled")).status == 200
    scale = await robot.get(f"/apis/apps/v1/namespaces/{ns}/deployments/scaled/scale")
    assert scale.status == 403
    assert scale.body["message"].startswith('deployments.apps "scaled" is forbidden: ')
    assert 'cannot get resource "deployments/scale" in API group "apps"' in scale.body["message"]
    assert scale.body["details"] == {"name": "scaled", "group": "apps", "kind": "deployments"}


async def test_authorization_comes_before_existence(robot: Api, ns: str) -> None:
    answer = await robot.get("/apis/coordination.k8s.io/v1/namespaces/no-such-namespace-tso/leases/x")
    assert answer.status == 403
    assert answer.body["message"].startswith('leases.coordination.k8s.io "x" is forbidden')


async def test_self_subject_access_review_answers_from_the_same_rules(robot: Api, ns: str) -> None:
    async def can_i(verb: str, resource: str, name: str = "", group: str = "", subresource: str = "") -> bool:
        answer = await robot.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource,
                                            "name": name, "subresource": subresource}}})
        assert answer.status == 201, answer.body
        return bool(answer.body["status"]["allowed"])

    assert await can_i("list", "pods")
    assert not await can_i("delete", "pods")
    assert await can_i("get", "secrets", "named")
    assert not await can_i("get", "secrets", "other")
    assert await can_i("get", "deployments", "x", group="apps")
    assert not await can_i("get", "deployments", "x", group="apps", subresource="scale")


async def test_an_expired_token_is_unauthorized(api: Api, ns: str, emulator: EmulatedCluster) -> None:
    await api.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "brief"}})
    token = (await _token(api, ns, "brief", seconds=600)).body["status"]["token"]
    async with aiohttp.ClientSession() as session:
        brief = Api(session, api.host, {"Authorization": f"Bearer {token}"}, api.ssl)
        assert (await brief.get("/api")).status == 200
        emulator.advance_clock(600)
        answer = await brief.get("/api")
    assert answer.status == 401
    assert answer.reason == "Unauthorized"
