"""RBAC for the emulated API server (optional): Roles, ClusterRoles and their bindings, evaluated for a
ServiceAccount's token the way kube-apiserver's RBAC authorizer does.

Owns the decision (allow or a Forbidden Status worded like the real one) from the objects in the store:
RoleBindings in the request's namespace and ClusterRoleBindings, rules matched on apiGroups, resources
(`resource/subresource`, `*`), resourceNames and verbs. Authorization comes before existence, so a request
into a namespace without a Role answers 403 even when the namespace does not exist. It also splits Roles into
single grants (`grants`) and tells which of them a set of requests used (`used_grants`), so an audit can find
rules nobody needs. It does not authenticate (authn.py maps tokens to users) and knows no aggregation,
impersonation or non-resource URLs beyond discovery (always allowed to an authenticated user, like
system:discovery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.kubeapi.store import Obj, Store

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class User:
    """An authenticated ServiceAccount."""

    namespace: str
    name: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")


@dataclass(frozen=True)
class Request:
    """What is asked: verb, API group, resource (and subresource), namespace, name."""

    verb: str
    group: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None


def _matches(values: list[str] | None, wanted: str) -> bool:
    return values is not None and ("*" in values or wanted in values)


def _rule_allows(rule: dict[str, Any], request: Request) -> bool:
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    resources = rule.get("resources") or []
    names = rule.get("resourceNames") or []
    return (
        _matches(rule.get("verbs"), request.verb)
        and _matches(rule.get("apiGroups"), request.group)
        and (resource in resources or "*" in resources or (request.subresource is not None and
                                                            f"*/{request.subresource}" in resources))
        and (not names or (request.name is not None and request.name in names))
    )


def _subject_is(subject: dict[str, Any], user: User) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return subject.get("name") == user.name and subject.get("namespace") == user.namespace
    if kind == "User":
        return subject.get("name") == user.username
    if kind == "Group":
        return subject.get("name") in user.groups
    return False


class Authorizer:
    """Reads bindings and roles from the store on every request (tests change them between requests)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _list(self, plural: str, namespace: str | None) -> list[Obj]:
        try:
            items, _ = self.store.list(self.store.resource_type(RBAC_GROUP, "v1", plural), namespace)
        except ApiError:
            return []
        return items

    def _role_rules(self, ref: dict[str, Any], namespace: str | None) -> list[dict[str, Any]]:
        plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        scope = None if plural == "clusterroles" else namespace
        role = next((r for r in self._list(plural, scope) if r["metadata"]["name"] == ref.get("name")), None)
        return list((role or {}).get("rules") or [])

    def allowed(self, user: User, request: Request) -> bool:
        bindings: list[tuple[Obj, str | None]] = [(b, None) for b in self._list("clusterrolebindings", None)]
        if request.namespace:
            bindings += [(b, request.namespace) for b in self._list("rolebindings", request.namespace)]
        for binding, namespace in bindings:
            if not any(_subject_is(s, user) for s in binding.get("subjects") or []):
                continue
            if any(_rule_allows(rule, request) for rule in self._role_rules(binding.get("roleRef") or {}, namespace)):
                return True
        return False

    def check(self, user: User, request: Request) -> None:
        """Raise the Forbidden Status a real server answers when `user` may not do `request`."""
        if self.allowed(user, request):
            return
        resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        qualified = f"{request.resource}.{request.group}" if request.group else request.resource
        subject = f'{qualified} "{request.name}"' if request.name else qualified
        where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
        message = (f'{subject} is forbidden: User "{user.username}" cannot {request.verb} resource "{resource}" '
                   f'in API group "{request.group}" {where}')
        details: dict[str, Any] = {"kind": request.resource}
        if request.group:
            details["group"] = request.group
        if request.name:
            details["name"] = request.name
        raise ApiError(403, "Forbidden", message, details=details)


@dataclass(frozen=True, order=True)
class Grant:
    """One verb on one resource (and, for a rule with resourceNames, one name) as a role's rules grant it."""

    role: str  # "ClusterRole name" or "Role name" (a Role's namespace is where it is placed, not part of it)
    verb: str
    group: str
    resource: str  # "resource" or "resource/subresource"
    name: str = ""  # one of the rule's resourceNames; "" when the rule names none (any object)

    def describe(self) -> str:
        on = f"{self.resource}{f'.{self.group}' if self.group else ''}"
        return f"{self.role}: {self.verb} {on}" + (f' "{self.name}"' if self.name else "")

    def allows(self, request: Request) -> bool:
        rule = {"verbs": [self.verb], "apiGroups": [self.group], "resources": [self.resource],
                "resourceNames": [self.name] if self.name else []}
        return _rule_allows(rule, request)


def grants(role: Obj) -> list[Grant]:
    """The single grants of a Role or ClusterRole, one per (rule, verb, apiGroup, resource, resourceName)."""
    label = f"{role['kind']} {role['metadata']['name']}"
    return [
        Grant(label, verb, group, resource, name)
        for rule in role.get("rules") or []
        for verb in rule.get("verbs") or []
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for name in (rule.get("resourceNames") or [""])
    ]


def used_grants(roles: list[Obj], requests: set[Request]) -> set[Grant]:
    """The grants of `roles` that at least one of `requests` falls under (a Role only in its own namespace).

    Where two roles both allow a request (overlapping rules placed in one namespace), both count as used.
    """
    used: set[Grant] = set()
    for role in roles:
        namespace = role["metadata"].get("namespace") if role["kind"] == "Role" else None
        in_scope = [r for r in requests if namespace is None or r.namespace == namespace]
        used.update(g for g in grants(role) if any(g.allows(r) for r in in_scope))
    return used
