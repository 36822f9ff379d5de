"""React to changes of a few fields without kopf's change-detection bookkeeping.

Why: any kopf "changing" handler (`on.field`, `on.update`, `on.delete`, ...) makes kopf keep a diff base
of the whole object in an annotation and PATCH it after every change — requests and deep copies on
every watch event, for handlers that only wake a daemon. An `on.event` handler costs neither. Here
the handler's `when=` filter compares the fields with what this process last saw of the object (kept
in the per-object memo): the filter is pure (kopf may evaluate it more than once), the handler records
what it saw. The first sight of an object only records: whatever runs for the object (its daemon)
starts from the current state anyway.

Owns the comparison; must not decide what a change means (the wrapped handler does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import kopf

Handler = Callable[..., Coroutine[Any, Any, None]]


class FieldWatch:
    """`when=` filter and handler wrapper for "any of these dotted fields changed" on an `on.event` handler."""

    def __init__(self, *paths: str, key: str) -> None:
        self._paths = [tuple(path.split(".")) for path in paths]
        self._attr = f"field_watch_{key}"

    def values(self, body: Mapping[str, Any]) -> tuple[Any, ...]:
        """The watched fields' current values (None where absent)."""
        found: list[Any] = []
        for path in self._paths:
            value: Any = body
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            found.append(value)
        return tuple(found)

    def changed(self, body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
        """The filter: the fields differ from what the handler last recorded (or were never recorded)."""
        return bool(getattr(memo, self._attr, None) != self.values(body))

    def handler(self, react: Handler) -> Handler:
        """`react` wrapped to record what it saw, and to run only when something it saw before changed."""

        @functools.wraps(react)
        async def recorded(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
            seen = getattr(memo, self._attr, None)
            setattr(memo, self._attr, self.values(body))
            if seen is not None:
                await react(body=body, memo=memo, **kwargs)

        return recorded
