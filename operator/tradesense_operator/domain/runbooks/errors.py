"""The one error a plan can raise: an incident spec the catalogue cannot turn into steps.

Must not carry I/O failures: those are `clients.errors`.
"""

from __future__ import annotations


class PlanError(ValueError):
    """A spec field is missing or unusable; `field` is its wire path (e.g. spec.parameters.backupPolicy)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
