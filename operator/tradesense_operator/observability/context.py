"""Which incident and step the current task works on, so every log line can say so without plumbing.

Owns the context variables only; must not format or emit log lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

current_object: ContextVar[str | None] = ContextVar("tso_object", default=None)
current_step: ContextVar[str | None] = ContextVar("tso_step", default=None)


@contextmanager
def log_context(*, obj: str | None = None, step: str | None = None) -> Iterator[None]:
    """Tag log records emitted inside the block with `object` ("kind ns/name") and `step`."""
    obj_token = current_object.set(obj) if obj is not None else None
    step_token = current_step.set(step) if step is not None else None
    try:
        yield
    finally:
        if step_token is not None:
            current_step.reset(step_token)
        if obj_token is not None:
            current_object.reset(obj_token)
