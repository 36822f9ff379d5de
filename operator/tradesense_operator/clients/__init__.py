"""The operator's outbound I/O: Kubernetes, PostgreSQL, Redis, Prometheus, HTTP.

Each client wraps its library once and raises this package's own errors, chained from the
library's, so nothing above this layer catches a third-party exception. Clients must not decide
anything (services and domain do) nor import kopf. Outside this package: the console's own API adapter
(console/cluster.py, the user's identity), the servers in bridge/handlers, and pitr_restore's row counts
on its scratch server.
"""
