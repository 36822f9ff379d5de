"""An emulated Kubernetes API server, faithful enough to run the real kopf operator against.

Modules by concern: `store` (objects, resourceVersions, history), `selectors`, `patching`,
`validation` + `cel` (CRD schemas and rules), `watch`, `server` (HTTP routes), `workloads`
(Deployment/ReplicaSet controllers and kubelet), `crds`, `faults`, `cluster` (the facade).
"""

from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.kubeapi.errors import ApiError

__all__ = ["ApiError", "EmulatedCluster"]
