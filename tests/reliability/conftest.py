"""Reliability tests reuse the runbook environment of the incident integration tests (a simulated
`tradesense` namespace on the emulated API, real PostgreSQL and Redis, the stand-in app)."""

from tests.integration.incidents.conftest import backup_policy, start_operator, tradesense

__all__ = ["backup_policy", "start_operator", "tradesense"]
