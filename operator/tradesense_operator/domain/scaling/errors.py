"""The one error the scaling domain raises: a spec the API schema accepted but that cannot be acted on.

Owns only the exception type; must not decide what is invalid (domain.scaling.validation does).
"""

from __future__ import annotations


class InvalidScalingSpec(ValueError):
    """A spec field is unusable; `field` is its JSON path (e.g. spec.schedules[0].timeZone)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
