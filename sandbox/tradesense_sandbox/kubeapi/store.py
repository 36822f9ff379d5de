"""The emulated etcd + generic registry: objects, resourceVersions, watch history and fan-out.

Every write goes through one `threading.RLock`, so the HTTP server (its own thread and loop), the
simulated controllers and tests calling the cluster facade from their threads see one consistent
history. The resourceVersion is a single global counter, bumped by every write and only by writes
(a no-op update keeps it, as on a real server); each resource type keeps a bounded history of its
watch events so a watch can resume from a resourceVersion exactly, or get 410 Gone once it is too old.
"""

from __future__ import annotations

import builtins
import datetime
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tradesense_sandbox.kubeapi import clock, managed_fields
from tradesense_sandbox.kubeapi.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
    not_found,
)
from tradesense_sandbox.kubeapi.patching import apply_patch
from tradesense_sandbox.kubeapi.resources import ResourceType, builtin_resources
from tradesense_sandbox.kubeapi.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from tradesense_sandbox.kubeapi.snapshot import clone
from tradesense_sandbox.kubeapi.watch import Watcher

Obj = dict[str, Any]
ResourceKey = tuple[str, str, str]
ObjectKey = tuple[str, str]  # (namespace or "", name)
Listener = Callable[[ResourceType, str, Obj, Obj | None], None]
AdmissionHook = Callable[[ResourceType, Obj, Obj | None], None]
GracePolicy = Callable[[ResourceType, Obj, "int | None"], int]
"""(type, object, requested gracePeriodSeconds) → the grace period to honour; 0 = remove at once."""

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's: no vowels, no confusable digits
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class WatchEvent:
    """One entry of a resource type's history; `obj` is an immutable snapshot."""

    resource_version: int
    type: str
    obj: Obj
    old: Obj | None = None


@dataclass
class _Table:
    """Storage of one resource type."""

    rtype: ResourceType
    objects: dict[ObjectKey, Obj] = field(default_factory=dict)
    history: deque[WatchEvent] = field(default_factory=deque)
    compacted_rv: int = 0  # events at or below this rv are gone from the history
    watchers: set[Watcher] = field(default_factory=set)


def _strip_for_compare(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


def _spec_part(obj: Obj, *, status_subresource: bool) -> Obj:
    ignored = {"metadata", "status"} if status_subresource else {"metadata"}
    return {k: v for k, v in obj.items() if k not in ignored}


class Store:
    """Thread-safe object storage with Kubernetes write semantics and watch fan-out."""

    def __init__(self, *, history_size: int = 5000) -> None:
        self.lock = threading.RLock()
        self.history_size = history_size
        self._rv = 0
        self._tables: dict[ResourceKey, _Table] = {}
        self._listeners: list[Listener] = []
        self._admission: list[AdmissionHook] = []
        self._grace_policy: GracePolicy | None = None
        self._dependents: dict[str, set[tuple[ResourceKey, ObjectKey]]] = {}
        for rtype in builtin_resources():
            self.register(rtype)

    # ---------------------------------------------------------------- resource types

    def register(self, rtype: ResourceType) -> None:
        with self.lock:
            existing = self._tables.get(rtype.key)
            if existing is None:
                self._tables[rtype.key] = _Table(rtype)
            else:
                existing.rtype = rtype

    def unregister(self, key: ResourceKey) -> None:
        """Drop a type and its objects (CRD deletion); open watches end."""
        with self.lock:
            table = self._tables.pop(key, None)
            if table is not None:
                for watcher in list(table.watchers):
                    watcher.close()

    def resource_types(self) -> builtins.list[ResourceType]:
        with self.lock:
            return [table.rtype for table in self._tables.values()]

    def resource_type(self, group: str, version: str, plural: str) -> ResourceType:
        with self.lock:
            table = self._tables.get((group, version, plural))
        if table is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return table.rtype

    def resource_for_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        with self.lock:
            for table in self._tables.values():
                rtype = table.rtype
                if rtype.group == group and rtype.version == version and rtype.kind == kind:
                    return rtype
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    def add_listener(self, listener: Listener) -> None:
        """Controllers subscribe here; called under the lock, so a listener must only enqueue."""
        with self.lock:
            self._listeners.append(listener)

    def add_admission(self, hook: AdmissionHook) -> None:
        """Per-kind validation (e.g. Deployment selectors); raise ApiError to reject a write."""
        with self.lock:
            self._admission.append(hook)

    def set_grace_policy(self, policy: GracePolicy) -> None:
        """Who decides graceful deletion (the pod strategy: bound, running pods get their grace period)."""
        with self.lock:
            self._grace_policy = policy

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    # ---------------------------------------------------------------- internals

    def _table(self, rtype: ResourceType) -> _Table:
        table = self._tables.get(rtype.key)
        if table is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return table

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, table: _Table, event_type: str, obj: Obj, old: Obj | None) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        event = WatchEvent(rv, event_type, obj, old)
        table.history.append(event)
        while len(table.history) > self.history_size:
            table.compacted_rv = table.history.popleft().resource_version
        namespace = obj["metadata"].get("namespace")
        for watcher in list(table.watchers):
            if watcher.namespace is None or watcher.namespace == namespace:  # a namespace's watch sees only its own
                watcher.offer(event)
        for listener in self._listeners:
            listener(table.rtype, event_type, obj, old)

    def _index_owners(self, rkey: ResourceKey, okey: ObjectKey, old: Obj | None, new: Obj | None) -> None:
        for obj, adding in ((old, False), (new, True)):
            if obj is None:
                continue
            for ref in obj.get("metadata", {}).get("ownerReferences") or []:
                uid = ref.get("uid")
                if not uid:
                    continue
                if adding:
                    self._dependents.setdefault(uid, set()).add((rkey, okey))
                else:
                    self._dependents.get(uid, set()).discard((rkey, okey))

    def _check_namespace(self, rtype: ResourceType, namespace: str | None) -> str:
        if not rtype.namespaced:
            return ""
        if not namespace:
            raise bad_request("the server could not find the requested resource: a namespace is required")
        return namespace

    def _stored(self, rtype: ResourceType, namespace: str | None, name: str) -> tuple[_Table, str, Obj]:
        """The stored object itself (not a copy), with its table and namespace key; NotFound when there is none.

        The caller holds the lock.
        """
        table = self._table(rtype)
        ns = self._check_namespace(rtype, namespace)
        obj = table.objects.get((ns, name))
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return table, ns, obj

    def _require_namespace_exists(self, rtype: ResourceType, namespace: str) -> None:
        if not rtype.namespaced:
            return
        ns_obj = self._tables[("", "v1", "namespaces")].objects.get(("", namespace))
        if ns_obj is None:
            raise ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found', details={"name": namespace, "kind": "namespaces"}
            )
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"{rtype.plural} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    def _admit(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        if rtype.validator is not None:
            obj = rtype.validator.admit(obj, old)
        for hook in self._admission:
            hook(rtype, obj, old)
        return obj

    # ---------------------------------------------------------------- reads

    def get(self, rtype: ResourceType, namespace: str | None, name: str, *, detached: bool = True) -> Obj:
        """The object as a read returns it; `detached=False` gives the stored snapshot itself (or its defaulted
        copy) to a caller that only serialises or reads it and must never modify it (the HTTP routes)."""
        with self.lock:
            _, _, obj = self._stored(rtype, namespace, name)
            return _served(rtype, obj, detached=detached)

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        detached: bool = True,
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by (namespace, name), and the list's resourceVersion (`detached` as in `get`)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rtype.kind)
        with self.lock:
            table = self._table(rtype)
            items = [
                _served(rtype, obj, detached=detached)
                for (ns, _), obj in sorted(table.objects.items())
                if (namespace is None or not rtype.namespaced or ns == namespace)
                and labels_match(labels, obj["metadata"].get("labels"))
                and fields_match(fields, obj)
            ]
            return items, self._rv

    def owned_by(self, rtype: ResourceType, owner_uid: str, *, detached: bool = True) -> builtins.list[Obj]:
        """Objects of `rtype` with an ownerReference to `owner_uid` (indexed: controllers call this per reconcile);
        `detached` as in `get`."""
        with self.lock:
            table = self._table(rtype)
            keys = sorted(okey for rkey, okey in self._dependents.get(owner_uid, set()) if rkey == rtype.key)
            return [_served(rtype, table.objects[okey], detached=detached) for okey in keys if okey in table.objects]

    # ---------------------------------------------------------------- writes

    def create(self, rtype: ResourceType, namespace: str | None, body: Obj, *, detached: bool = True) -> Obj:
        """Store a new object; returns it as stored (`detached` as in `get`)."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = clone(body)
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if obj["apiVersion"] != rtype.api_version or obj["kind"] != rtype.kind:
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version "
                f"({rtype.api_version}) or kind {obj['kind']} is not {rtype.kind}"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        with self.lock:
            table = self._table(rtype)
            if rtype.namespaced:
                body_ns = meta.get("namespace")
                ns = namespace or body_ns
                if body_ns and namespace and body_ns != namespace:
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request"
                    )
                if not ns:
                    raise bad_request("a namespace is required for namespaced resources")
                self._require_namespace_exists(rtype, ns)
                meta["namespace"] = ns
            else:
                ns = ""
                meta.pop("namespace", None)
            name = self._assign_name(rtype, table, ns, meta)
            if (ns, name) in table.objects:
                raise already_exists(rtype.plural, rtype.group, name)
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
                meta.pop(key, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = clock.rfc3339()
            if rtype.tracks_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rtype.status_subresource and rtype.kind not in ("Node", "Pod", "Namespace"):
                obj.pop("status", None)
            if rtype.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj = self._admit(rtype, obj, None)
            managed_fields.stamp(None, obj, rtype.api_version, None)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            table.objects[(ns, name)] = obj
            self._index_owners(rtype.key, (ns, name), None, obj)
            self._emit(table, "ADDED", obj, None)
            return clone(obj) if detached else obj

    def _assign_name(self, rtype: ResourceType, table: _Table, ns: str, meta: Obj) -> str:
        """metadata.name, or generateName plus five random characters; validated as a DNS subdomain."""
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
                )
            for _ in range(100):
                candidate = prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
                if (ns, candidate) not in table.objects:
                    name = candidate
                    break
            meta["name"] = name
        if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
            raise invalid(
                rtype.kind,
                rtype.group,
                str(name),
                [
                    (
                        "FieldValueInvalid",
                        "metadata.name",
                        (
                            f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case "
                            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                        ),
                    )
                ],
            )
        return str(name)

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        *,
        subresource: str | None = None,
        precondition_rv: str | None = None,
        detached: bool = True,
    ) -> Obj:
        """Read-modify-write under the lock; the core of PUT and PATCH (and controller writes). Returns the
        object as stored (`detached` as in `get`).

        Stored objects are immutable snapshots (watch events and histories hold them): `old` is the stored one
        itself (read only), `mutate` gets a copy, and the new object may share parts it did not change with
        `old`, never modifying them."""
        with self.lock:
            table, ns, stored = self._stored(rtype, namespace, name)
            old = _served(rtype, stored, detached=False)  # writes start from what a read returns (defaulted)
            if precondition_rv is not None and precondition_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            proposed = mutate(clone(old))
            if not isinstance(proposed, dict) or not isinstance(proposed.get("metadata", {}), dict):
                raise bad_request("the body of the request must be a JSON object with object metadata")
            proposed_meta = proposed.setdefault("metadata", {})
            if proposed_meta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({proposed_meta.get('name')}) does not match the name on the URL ({name})"
                )
            new_rv = proposed_meta.get("resourceVersion")
            if new_rv not in (None, "") and str(new_rv) != old["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            new = self._merge_subresource(rtype, old, proposed, subresource)
            self._check_finalizers(rtype, old, new)
            if new.get("apiVersion", rtype.api_version) != rtype.api_version or new.get("kind", rtype.kind) != rtype.kind:
                raise bad_request(f"the kind/apiVersion of the object does not match {rtype.kind}/{rtype.api_version}")
            new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
            if subresource is None:
                new = self._admit(rtype, new, old)
            elif rtype.validator is not None:
                new = rtype.validator.admit(new, old)
            if _strip_for_compare(new) == _strip_for_compare(old):
                return clone(old) if detached else old  # no-op writes keep the resourceVersion, like a real server
            managed_fields.stamp(old, new, rtype.api_version, subresource)
            if rtype.tracks_generation and (
                _spec_part(new, status_subresource=rtype.status_subresource)
                != _spec_part(old, status_subresource=rtype.status_subresource)
            ):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            if (
                new["metadata"].get("deletionTimestamp")
                and not new["metadata"].get("finalizers")
                and not int(new["metadata"].get("deletionGracePeriodSeconds") or 0)
            ):
                self._remove(table, (ns, name), new)
                return clone(new) if detached else new
            table.objects[(ns, name)] = new
            self._index_owners(rtype.key, (ns, name), old, new)
            self._emit(table, "MODIFIED", new, old)
            return clone(new) if detached else new

    def _merge_subresource(self, rtype: ResourceType, old: Obj, proposed: Obj, subresource: str | None) -> Obj:
        """Keep the fields the endpoint may not change: status via the main endpoint, all else via /status."""
        if subresource == "status":
            new = dict(old)  # shares spec and the rest with `old`; metadata is written below, so it is new
            new["metadata"] = dict(old["metadata"])
            if "status" in proposed:
                new["status"] = proposed["status"]
            else:
                new.pop("status", None)
            return new
        new = proposed
        old_meta, meta = old["metadata"], new["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if rtype.status_subresource and subresource is None:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def _check_finalizers(self, rtype: ResourceType, old: Obj, new: Obj) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
        if added:
            raise invalid(
                rtype.kind,
                rtype.group,
                old["metadata"]["name"],
                [
                    (
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        (
                            "Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(added)!r}"
                        ),
                    )
                ],
            )

    def replace(
        self, rtype: ResourceType, namespace: str | None, name: str, body: Obj, *, subresource: str | None = None,
        detached: bool = True,
    ) -> Obj:
        """PUT: a stale metadata.resourceVersion in the body is a 409 Conflict."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return self.update(rtype, namespace, name, lambda _old: clone(body), subresource=subresource,
                           detached=detached)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        detached: bool = True,
    ) -> Obj:
        strategic = not rtype.crd_name
        return self.update(
            rtype,
            namespace,
            name,
            lambda old: apply_patch(old, content_type, body, strategic_allowed=strategic),
            subresource=subresource,
            detached=detached,
        )

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        """Finalizers only mark the object (deletionTimestamp); otherwise remove it and collect dependents.

        A type with a grace policy (pods) is marked Terminating for its grace period instead: deletionTimestamp
        is the moment it will be removed and deletionGracePeriodSeconds the period, as on a real server; the
        kubelet removes it (a second DELETE with gracePeriodSeconds=0) when its containers have stopped.
        """
        with self.lock:
            table, ns, old = self._stored(rtype, namespace, name)
            meta = old["metadata"]
            if precondition_uid is not None and precondition_uid != meta["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {precondition_uid}, UID in object meta: {meta['uid']}",
                )
            if precondition_rv is not None and precondition_rv != meta["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: ResourceVersion in precondition: {precondition_rv}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            if rtype.kind == "Namespace" and rtype.group == "":
                return self._delete_namespace(table, old)
            grace = 0 if self._grace_policy is None else self._grace_policy(rtype, old, grace_period_seconds)
            if grace > 0:
                return self._mark_terminating(table, (ns, name), old, grace)
            if meta.get("deletionTimestamp") and int(meta.get("deletionGracePeriodSeconds") or 0) and meta.get(
                "finalizers"
            ):
                new = clone(old)
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = str(self._next_rv())
                table.objects[(ns, name)] = new
                self._emit(table, "MODIFIED", new, old)
                return clone(new)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return clone(old)
                new = clone(old)
                new["metadata"]["deletionTimestamp"] = clock.rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = str(self._next_rv())
                table.objects[(ns, name)] = new
                self._emit(table, "MODIFIED", new, old)
                return clone(new)
            final = clone(old)
            final["metadata"]["resourceVersion"] = str(self._next_rv())
            self._remove(table, (ns, name), final, orphan=propagation_policy == "Orphan")
            return final

    def _mark_terminating(self, table: _Table, okey: ObjectKey, old: Obj, grace: int) -> Obj:
        """Graceful deletion: set (or shorten, never lengthen) the deadline; the object stays listed."""
        meta = old["metadata"]
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current is not None and int(current) <= grace:
            return clone(old)
        new = clone(old)
        new["metadata"]["deletionTimestamp"] = clock.rfc3339(clock.now() + datetime.timedelta(seconds=grace))
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        table.objects[okey] = new
        self._emit(table, "MODIFIED", new, old)
        return clone(new)

    def _remove(self, table: _Table, okey: ObjectKey, final: Obj, *, orphan: bool = False) -> None:
        old = table.objects.pop(okey)
        self._index_owners(table.rtype.key, okey, old, None)
        self._emit(table, "DELETED", final, old)
        self._collect_dependents(final["metadata"]["uid"], orphan=orphan)
        if okey[0]:
            self._finish_namespace_if_empty(okey[0])

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        """The garbage collector: dependents go too (background), or lose the reference (Orphan)."""
        for rkey, okey in sorted(self._dependents.pop(owner_uid, set())):
            table = self._tables.get(rkey)
            if table is None or okey not in table.objects:
                continue
            rtype = table.rtype
            if orphan:
                self.update(rtype, okey[0] or None, okey[1], lambda o: _without_owner(o, owner_uid))
                continue
            remaining = [
                r for r in table.objects[okey]["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid
            ]
            if remaining and any(self._uid_exists(r.get("uid", "")) for r in remaining):
                self.update(rtype, okey[0] or None, okey[1], lambda o: _without_owner(o, owner_uid))
                continue
            self.delete(rtype, okey[0] or None, okey[1])

    def _uid_exists(self, uid: str) -> bool:
        return any(obj["metadata"].get("uid") == uid for table in self._tables.values() for obj in table.objects.values())

    def _delete_namespace(self, table: _Table, old: Obj) -> Obj:
        name = old["metadata"]["name"]
        if name in _SYSTEM_NAMESPACES:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        new = clone(old)
        if not new["metadata"].get("deletionTimestamp"):
            new["metadata"]["deletionTimestamp"] = clock.rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            table.objects[("", name)] = new
            self._emit(table, "MODIFIED", new, old)
        for other in list(self._tables.values()):
            if not other.rtype.namespaced:
                continue
            for okey in [k for k in other.objects if k[0] == name]:
                if okey in other.objects:
                    self.delete(other.rtype, name, okey[1])
        self._finish_namespace_if_empty(name)
        return clone(table.objects.get(("", name), new))

    def _finish_namespace_if_empty(self, namespace: str) -> None:
        ns_table = self._tables[("", "v1", "namespaces")]
        ns_obj = ns_table.objects.get(("", namespace))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if any(k[0] == namespace for t in self._tables.values() if t.rtype.namespaced for k in t.objects):
            return
        final = clone(ns_obj)
        final["metadata"]["resourceVersion"] = str(self._next_rv())
        ns_table.objects.pop(("", namespace))
        self._emit(ns_table, "DELETED", final, ns_obj)

    # ---------------------------------------------------------------- watches

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        watcher: Watcher,
        *,
        since: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial_events: bool = False,
    ) -> None:
        """Register `watcher` and queue what it must see first (initial state or the replay after `since`)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rtype.kind)
        with self.lock:
            table = self._table(rtype)
            watcher.configure(namespace if rtype.namespaced else None, labels, fields)
            if since in (None, "", "0") or send_initial_events:
                for _, obj in sorted(table.objects.items()):
                    if watcher.matches(obj):
                        watcher.push("ADDED", obj)
                if send_initial_events:
                    watcher.push_initial_end(self._rv)
            else:
                try:
                    since_rv = int(str(since))
                except ValueError as exc:
                    raise bad_request(f"invalid resource version {since!r}") from exc
                if since_rv < table.compacted_rv:
                    raise expired(f"too old resource version: {since_rv} ({table.compacted_rv + 1})")
                for event in table.history:
                    if event.resource_version > since_rv:
                        watcher.offer(event)
            table.watchers.add(watcher)

    def unwatch(self, rtype: ResourceType, watcher: Watcher) -> None:
        with self.lock:
            table = self._tables.get(rtype.key)
            if table is not None:
                table.watchers.discard(watcher)

    def watchers(self) -> builtins.list[Watcher]:
        with self.lock:
            return [w for table in self._tables.values() for w in table.watchers]

    def compact(self, rtype: ResourceType | None = None) -> None:
        """Forget the watch history (of one type or all): every resume from an older rv gets 410."""
        with self.lock:
            for table in self._tables.values():
                if rtype is None or table.rtype.key == rtype.key:
                    table.history.clear()
                    table.compacted_rv = self._rv

    # ---------------------------------------------------------------- seeding

    def seed(self) -> None:
        """The objects every cluster has: system namespaces and two Ready nodes."""
        ns_type = self._tables[("", "v1", "namespaces")].rtype
        for name in _SYSTEM_NAMESPACES:
            self.create(ns_type, None, {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
        node_type = self._tables[("", "v1", "nodes")].rtype
        for index in (1, 2):
            name = f"emulated-node-{index}"
            self.create(
                node_type,
                None,
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
                    "spec": {},
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": clock.rfc3339(),
                                "lastTransitionTime": clock.rfc3339(),
                            }
                        ],
                        "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                        "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                        "nodeInfo": {"kubeletVersion": "v1.30.0-emulated"},
                    },
                },
            )

    def all_objects(self) -> Iterable[tuple[ResourceType, Obj]]:
        with self.lock:
            return [(t.rtype, clone(o)) for t in self._tables.values() for o in t.objects.values()]


def _served(rtype: ResourceType, obj: Obj, *, detached: bool) -> Obj:
    """What a read returns: the stored object with the CRD's current defaults applied (never written back) — a
    copy when `detached` or when a default is missing, else the stored snapshot itself."""
    if rtype.validator is not None and rtype.validator.lacks_defaults(obj):
        return rtype.validator.with_defaults(clone(obj))
    return clone(obj) if detached else obj


def _without_owner(obj: Obj, owner_uid: str) -> Obj:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)
    return obj


def parse_timestamp(value: str) -> datetime.datetime:
    """An RFC 3339 timestamp as the API server writes it (seconds or microseconds, `Z`)."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(datetime.UTC)


__all__ = ["FieldRequirement", "Obj", "Requirement", "Store", "WatchEvent"]
