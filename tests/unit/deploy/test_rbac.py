"""RBAC in deploy/rbac is least privilege and explained.

Covers: no wildcards anywhere; Secrets only by resourceNames and never listed, watched or created;
the ClusterRole holds only what kopf needs cluster-wide (plus the cluster-scoped node read a runbook
step needs) and touches no application resources; the Role is confined to the application namespace;
the operator's own namespace grants only its bridge token and routing table by name; all are bound to
the operator's ServiceAccount; every rule carries a comment saying why; our CRDs' kinds and status
subresources are covered; and every Kubernetes API call in the operator's code is granted (a static scan
of `kube.<verb>(KIND, …)` calls, so a new call without RBAC fails here rather than in a real cluster).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradesense_operator.api.v1alpha1.kinds import KINDS
from tradesense_operator.clients import kube

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "deploy" / "rbac"
PACKAGE = ROOT / "operator" / "tradesense_operator"
ROLE_FILES = ("cluster_role.yaml", "app_role.yaml", "operator_role.yaml")
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "tradesense-operator", "namespace": "tradesense-system"}
APP_NAMESPACE = "tradesense"
Rule = dict[str, Any]

# (apiGroup, resource) → the most the ClusterRole may grant on it.
CLUSTER_ALLOWED: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},  # patch: a repeated Event bumps its count (Event series)
    ("", "nodes"): {"get", "list"},
    **{("ops.tradesense.io", kind.plural): {"get", "list", "watch", "patch", "create"} for kind in KINDS},
    **{("ops.tradesense.io", f"{kind.plural}/status"): {"get", "patch"} for kind in KINDS},
}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((RBAC / name).read_text(encoding="utf-8"))
    return document


def _all_rules() -> list[tuple[str, Rule]]:
    return [(name, rule) for name in ROLE_FILES for rule in _load(name)["rules"]]


def _grants(rules: list[Rule]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_rbac_kustomization_lists_every_file() -> None:
    listed = set(_load("kustomization.yaml")["resources"])
    assert listed == {path.name for path in RBAC.glob("*.yaml")} - {"kustomization.yaml"}


def test_no_wildcards_in_groups_resources_verbs_or_names() -> None:
    for source, rule in _all_rules():
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in value for value in rule.get(key, [])), f"{source}: {rule}"
        assert not DANGEROUS_VERBS & set(rule["verbs"]), f"{source}: {rule}"


def test_secrets_only_by_name_and_never_listed_watched_or_created() -> None:
    secret_rules = [(source, rule) for source, rule in _all_rules() if "secrets" in rule["resources"]]
    assert secret_rules, "the signing-key and credential Secrets need a rule"
    for source, rule in secret_rules:
        assert source != "cluster_role.yaml", "Secrets are never granted cluster-wide"
        assert rule["resources"] == ["secrets"], "a secrets rule grants nothing else"
        assert rule.get("resourceNames"), f"secrets without resourceNames: {rule}"
        assert set(rule["verbs"]) <= {"get", "patch", "update"}, f"{rule['verbs']}: not restrictable by name"


def test_only_the_signing_secret_is_writable() -> None:
    writable = {
        name for _, rule in _all_rules() if "secrets" in rule["resources"] and set(rule["verbs"]) & {"patch", "update"}
        for name in rule["resourceNames"]
    }
    assert writable == {"tradesense-secrets"}


def test_cluster_role_is_limited_to_what_kopf_needs() -> None:
    grants = _grants(_load("cluster_role.yaml")["rules"])
    for key, verbs in grants.items():
        assert key in CLUSTER_ALLOWED, f"{key} is not needed cluster-wide"
        assert verbs <= CLUSTER_ALLOWED[key], f"{key}: {sorted(verbs - CLUSTER_ALLOWED[key])} too much"
    create = {resource for (_, resource), verbs in grants.items() if "create" in verbs}
    assert create == {"events", "tradesenseincidents"}, "the bridge creates incidents, kopf creates Events; nothing else"


def test_cluster_role_covers_every_kind_and_its_status() -> None:
    grants = _grants(_load("cluster_role.yaml")["rules"])
    for kind in KINDS:  # kopf's watch and patch; `get` only where the code re-reads (the RBAC audit checks it)
        assert {"list", "watch", "patch"} <= grants[("ops.tradesense.io", kind.plural)]
        assert "patch" in grants[("ops.tradesense.io", f"{kind.plural}/status")]


def test_application_permissions_are_namespaced_to_the_application() -> None:
    role = _load("app_role.yaml")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == APP_NAMESPACE
    grants = _grants(role["rules"])
    assert {"patch"} <= grants[("apps", "deployments/scale")]
    assert "delete" in grants[("", "pods")]
    assert grants[("autoscaling", "horizontalpodautoscalers")] <= {"get", "list", "watch"}
    assert ("", "pods/exec") not in grants, "steps talk to PostgreSQL/Redis directly, never through exec"


@pytest.mark.parametrize(("binding", "role"), [("cluster_role_binding.yaml", "cluster_role.yaml"),
                                              ("app_role_binding.yaml", "app_role.yaml"),
                                              ("operator_role_binding.yaml", "operator_role.yaml")])
def test_bindings_grant_the_roles_to_the_operator_service_account_only(binding: str, role: str) -> None:
    document, granted = _load(binding), _load(role)
    assert document["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": granted["kind"],
                                   "name": granted["metadata"]["name"]}
    assert document["subjects"] == [SERVICE_ACCOUNT]
    assert document["metadata"].get("namespace") == granted["metadata"].get("namespace")
    account = _load("service_account.yaml")["metadata"]
    assert (account["name"], account["namespace"]) == (SERVICE_ACCOUNT["name"], SERVICE_ACCOUNT["namespace"])


def test_operator_namespace_role_is_by_name_except_lease_creation() -> None:
    role = _load("operator_role.yaml")
    assert role["metadata"]["namespace"] == SERVICE_ACCOUNT["namespace"]
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            assert set(rule["verbs"]) <= {"get", "update"}, rule
        else:  # creation has no name to restrict by; only the leader Lease is ever created here
            assert (rule["resources"], rule["verbs"]) == (["leases"], ["create"]), rule


@pytest.mark.parametrize("name", ROLE_FILES)
def test_every_rule_is_preceded_by_a_comment_saying_why(name: str) -> None:
    lines = (RBAC / name).read_text(encoding="utf-8").splitlines()
    starts = [index for index, line in enumerate(lines) if re.match(r"^\s*- apiGroups:", line)]
    assert len(starts) == len(_load(name)["rules"]), "every rule starts with apiGroups"
    uncommented = [index + 1 for index in starts
                   if not lines[index - 1].strip().startswith("#") or len(lines[index - 1].strip()) < 15]
    assert uncommented == [], f"{name}: rules without an explaining comment at lines {uncommented}"


# ---- the code's API calls are all granted ---------------------------------------------------------------

_CALL = re.compile(r"\.(get|get_or_none|list|create|patch|replace|delete)\(\s*([A-Z][A-Z0-9_]*)\s*[,)]")
# clients.status_writer's functions: their second argument is the kind whose status subresource they patch.
_STATUS_WRITE = re.compile(r"\b(?:write_status|patch_status)\(\s*[\w.]+,\s*([A-Z][A-Z0-9_]*)\s*,")
_VERB = {"get": "get", "get_or_none": "get", "list": "list", "create": "create", "patch": "patch",
         "replace": "update", "delete": "delete"}
# KubeClient helpers whose resource is fixed inside the client.
_HELPERS = {
    "get_replicas": ("apps", "deployments/scale", "get"),
    "set_replicas": ("apps", "deployments/scale", "patch"),
    "pod_logs": ("", "pods/log", "get"),
    "create_event": ("", "events", "create"),
}


def _call_text(text: str, start: int) -> str:
    """The argument text of the call whose "(" is at `start` (parentheses balanced)."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    return text[start:]


def _api_calls() -> set[tuple[str, str, str, str]]:
    """(group, resource, verb, where) for every recognisable API call in the operator's code."""
    calls = set()
    for layer in ("services", "handlers", "bridge", "cli"):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            where = str(path.relative_to(PACKAGE))
            for match in _CALL.finditer(text):
                kind = getattr(kube, match[2], None)
                if not isinstance(kind, kube.ResourceKind):
                    continue
                subresource = re.search(r"subresource=\"(\w+)\"", _call_text(text, text.index("(", match.start())))
                group = kind.api_version.rpartition("/")[0]
                resource = kind.plural + (f"/{subresource[1]}" if subresource else "")
                calls.add((group, resource, _VERB[match[1]], where))
            for match in _STATUS_WRITE.finditer(text):
                kind = getattr(kube, match[1], None)
                if isinstance(kind, kube.ResourceKind):
                    calls.add((kind.api_version.rpartition("/")[0], f"{kind.plural}/status", "patch", where))
            for helper, (group, resource, verb) in _HELPERS.items():
                if f".{helper}(" in text:
                    calls.add((group, resource, verb, where))
    return calls


def test_the_scan_finds_the_calls_it_should() -> None:
    resources = {(group, resource, verb) for group, resource, verb, _ in _api_calls()}
    assert ("", "secrets", "patch") in resources  # secret-rotate
    assert ("coordination.k8s.io", "leases", "update") in resources  # the lock replaces its Lease
    assert ("ops.tradesense.io", "backuppolicies/status", "patch") in resources  # through status_writer
    assert ("ops.tradesense.io", "tradesenseincidents/status", "patch") in resources
    assert ("ops.tradesense.io", "scalingpolicies/status", "patch") in resources
    assert ("", "nodes", "list") in resources  # check-nodes: `kube.list(NODES)`, no further arguments


def test_every_api_call_in_the_code_is_granted() -> None:
    grants = _grants([rule for _, rule in _all_rules()])
    missing = sorted(f"{where}: {verb} {group or 'core'}/{resource}" for group, resource, verb, where in _api_calls()
                     if verb not in grants.get((group, resource), set()))
    assert missing == [], "add these to deploy/rbac (with a comment saying why)"
