"""The incident step engine's decisions, as pure functions over the API models.

Purely computational: no I/O, no kopf, no clients. The service in `services/incidents` reads the
cluster, asks these functions what to do next, and writes the answer back, so every rule here
(approval gating, retries, deadlines, the storm guard, lease arithmetic) is table-testable with
plain values and an explicit `now`.
"""
