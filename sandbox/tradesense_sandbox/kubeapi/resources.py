"""Resource types the emulated API serves: built-in kinds plus whatever CRDs register.

A `ResourceType` carries what discovery publishes (names, scope, verbs, subresources) and the
behaviour switches the store needs (generation tracking, status/scale subresources, schema).

Descriptions only; must not store objects (store.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradesense_sandbox.kubeapi.validation import SchemaValidator

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScaleSpec:
    """Where a kind keeps the numbers the `/scale` subresource exposes (dotted JSON paths)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = ".status.selector"


@dataclass
class ResourceType:
    """One served (group, version, plural) with its discovery data and storage behaviour."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    tracks_generation: bool = False
    has_log: bool = False
    validator: SchemaValidator | None = None
    crd_name: str | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    def discovery(self) -> list[dict[str, Any]]:
        """The APIResource entries for this type and its subresources."""
        entries: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(ALL_VERBS),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.scale is not None:
            entries.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Scale",
                    "group": "autoscaling",
                    "version": "v1",
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.has_log:
            entries.append(
                {
                    "name": f"{self.plural}/log",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
        return entries


def builtin_resources() -> list[ResourceType]:
    """The built-in kinds the operator, kopf and the tests use."""

    def scalable_workload(kind: str, short_name: str) -> ResourceType:
        """An apps/v1 workload: in category `all`, with status and scale subresources and a tracked generation."""
        return ResourceType("apps", "v1", kind, f"{kind.lower()}s", kind.lower(), True, (short_name,), ("all",),
                            status_subresource=True, scale=ScaleSpec(), tracks_generation=True)

    return [
        ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), status_subresource=True),
        ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), status_subresource=True),
        ResourceType("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",), status_subresource=True, has_log=True),
        ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
        ResourceType("", "v1", "Secret", "secrets", "secret", True),
        ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
        ResourceType("", "v1", "Service", "services", "service", True, ("svc",), ("all",), status_subresource=True),
        ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
        ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
        ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True),
        ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False),
        ResourceType(
            "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False
        ),
        ResourceType(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            True,
            ("pvc",),
            status_subresource=True,
        ),
        scalable_workload("Deployment", "deploy"),
        scalable_workload("ReplicaSet", "rs"),
        scalable_workload("StatefulSet", "sts"),
        ResourceType(
            "batch", "v1", "Job", "jobs", "job", True, (), ("all",), status_subresource=True, tracks_generation=True
        ),
        ResourceType(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            "cronjob",
            True,
            ("cj",),
            ("all",),
            status_subresource=True,
            tracks_generation=True,
        ),
        ResourceType(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            True,
            ("hpa",),
            ("all",),
            status_subresource=True,
            tracks_generation=True,
        ),
        ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
        ResourceType("events.k8s.io", "v1", "Event", "events", "event", True, ("ev",)),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            False,
            ("crd", "crds"),
            ("api-extensions",),
            status_subresource=True,
            tracks_generation=True,
        ),
    ]
