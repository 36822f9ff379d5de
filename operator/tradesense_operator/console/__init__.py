"""The SRE's console: `kubectl tradesense get|approve|cancel|retry|report|dashboard`.

Everything here acts with the USER's kubeconfig and context (so the user's RBAC applies), never the
operator's identity, and never imports kopf or the operator's handlers: it is a client of the API, like
kubectl. Pure pieces (the incident view, the tree text, the approve/cancel patches, the postmortem) are
separate from the I/O pieces (the cluster adapter, Prometheus range queries, the dashboard server).
"""
