"""Validation errors of an incident spec as (wire path, problem) pairs, e.g. ("spec.parameters.replicas", …).

The operator (status condition, Warning Event) and `tradesense-operator plan` report a bad spec the same
way: naming the field as it is written in the manifest, not as pydantic's location tuple.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


def wire_path(prefix: str, loc: Sequence[int | str]) -> str:
    """`spec` + ('steps', 0, 'params') → `spec.steps[0].params` (locations are camelCase aliases)."""
    path = prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return path.removeprefix(".") or "(document)"


def spec_problems(exc: ValidationError, prefix: str = "spec") -> list[tuple[str, str]]:
    """Every error as (path, message); a model-level rule has no location and reports the prefix."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append((wire_path(prefix, error["loc"]), message))
    return problems
