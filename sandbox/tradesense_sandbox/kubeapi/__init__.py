"""An emulated Kubernetes API server, faithful enough to run the real kopf operator against.

Modules by concern: `store` (objects, resourceVersions, history), `resources` (served types), `selectors`,
`patching`, `managed_fields`, `validation` + `cel` (CRD schemas and rules), `crds`, `watch`, `server` (HTTP
routes), `rbac` (optional authorization), `workloads` (Deployment/ReplicaSet controllers), `kubelet` (pods and
nodes), `clock`, `errors`, `faults`, `cluster` (the facade).

Test, demo and benchmark infrastructure: the operator must never import it, and nothing here builds or talks to a
real API server.
"""

from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.kubeapi.errors import ApiError

__all__ = ["ApiError", "EmulatedCluster"]
