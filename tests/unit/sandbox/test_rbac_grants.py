"""The RBAC audit's arithmetic: roles split into single grants (one per verb, group, resource and resourceName),
a request uses a Role's grant only in the Role's namespace and a ClusterRole's anywhere, and a rule added to
deploy/rbac that no request needs is exactly what is left over (what test_deploy_rbac_audit fails on)."""

from __future__ import annotations

import copy

from tradesense_sandbox.kubeapi.rbac import Grant, Request, grants, used_grants
from tradesense_sandbox.operator_rbac import all_grants, deploy_rbac, placed, roles

ROLE = {"kind": "Role", "metadata": {"name": "r", "namespace": "app"}, "rules": [
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a", "b"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "patch"]},
]}
CLUSTER_ROLE = {"kind": "ClusterRole", "metadata": {"name": "c"}, "rules": [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
]}


def test_a_role_splits_into_one_grant_per_verb_resource_and_name() -> None:
    assert set(grants(ROLE)) == {
        Grant("Role r", "get", "", "secrets", "a"), Grant("Role r", "get", "", "secrets", "b"),
        Grant("Role r", "get", "apps", "deployments"), Grant("Role r", "patch", "apps", "deployments"),
        Grant("Role r", "get", "apps", "deployments/scale"), Grant("Role r", "patch", "apps", "deployments/scale"),
    }


def test_a_request_uses_a_role_grant_only_in_its_namespace_and_a_cluster_role_grant_anywhere() -> None:
    requests = {
        Request("get", "", "secrets", None, "app", "a"),
        Request("patch", "apps", "deployments", "scale", "elsewhere", "web"),  # not the Role's namespace
        Request("list", "", "nodes", None, None, None),
    }
    assert used_grants([ROLE, CLUSTER_ROLE], requests) == {
        Grant("Role r", "get", "", "secrets", "a"), Grant("ClusterRole c", "list", "", "nodes")}


def test_a_rule_nobody_needs_is_what_is_left_over() -> None:
    shipped = placed(deploy_rbac(), app_namespace="app")
    extra = copy.deepcopy(shipped)
    app_role = next(d for d in extra if d["kind"] == "Role" and d["metadata"]["name"] == "tradesense-operator")
    app_role["rules"].append({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]})
    used = all_grants(shipped)  # every shipped rule exercised, as the audit's runs do
    assert all_grants(extra) - used == {Grant("Role tradesense-operator", "list", "", "configmaps")}
    assert len(roles(extra)) == 3
