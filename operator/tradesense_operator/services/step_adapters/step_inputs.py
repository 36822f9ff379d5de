"""Reading a planned step's target and parameters, typed, with the catalogue's defaults.

Plans are validated when they are resolved (`domain.runbooks.action_specs.check_params`), so a wrong
type here means a plan frozen by an older operator version; it fails the step with the parameter named.
Must not read the cluster or act; it only reads the planned step.
"""

from __future__ import annotations

from typing import TypeVar

from tradesense_operator.api.v1alpha1.incident import PlannedStep
from tradesense_operator.domain.runbooks.action_specs import split_target
from tradesense_operator.services.step_adapters.base import StepFailed

T = TypeVar("T", str, bool)


def target_name(step: PlannedStep, kind: str) -> str:
    """The name part of `<kind>/<name>`; StepFailed when the step targets another kind of object."""
    found_kind, name = split_target(step.target)
    if found_kind != kind:
        raise StepFailed(f"step {step.id}: target {step.target!r} is not a {kind}")
    return name


def param_str(step: PlannedStep, name: str, default: str | None = None) -> str | None:
    """A string parameter, or `default` when absent."""
    return _typed(step, name, str, default)


def param_int(step: PlannedStep, name: str, default: int | None = None) -> int | None:
    """An integer parameter (booleans rejected), or `default` when absent."""
    value = step.params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise StepFailed(f"step {step.id}: parameter {name} must be an integer, got {value!r}")
    return value


def param_float(step: PlannedStep, name: str, default: float) -> float:
    """A numeric parameter as float."""
    value = step.params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepFailed(f"step {step.id}: parameter {name} must be a number, got {value!r}")
    return float(value)


def param_bool(step: PlannedStep, name: str, default: bool = False) -> bool:
    """A boolean parameter."""
    return bool(_typed(step, name, bool, default))


def require_str(step: PlannedStep, name: str) -> str:
    """A string parameter the action cannot do without."""
    value = param_str(step, name)
    if value is None:
        raise StepFailed(f"step {step.id}: parameter {name} is required")
    return value


def require_int(step: PlannedStep, name: str) -> int:
    """An integer parameter the action cannot do without."""
    value = param_int(step, name)
    if value is None:
        raise StepFailed(f"step {step.id}: parameter {name} is required")
    return value


def _typed(step: PlannedStep, name: str, kind: type[T], default: T | None) -> T | None:
    value = step.params.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise StepFailed(f"step {step.id}: parameter {name} must be a {kind.__name__}, got {value!r}")
    return value
