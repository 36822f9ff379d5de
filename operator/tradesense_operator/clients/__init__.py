"""The only I/O: Kubernetes, PostgreSQL, Redis, Prometheus, HTTP.

Each client wraps its library once and raises this package's own errors, chained from the
library's, so nothing above this layer catches a third-party exception.
"""
