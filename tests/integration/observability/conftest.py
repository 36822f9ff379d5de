"""The observability tests drive the same in-process operator (HTTP server beside kopf) as the bridge tests."""

from tests.integration.bridge.operator_harness import operator_with_bridge  # noqa: F401  (fixture)
