"""Watch subscriptions: a thread-safe mailbox per open watch request.

The store offers events under its lock from whichever thread wrote; the HTTP handler drains the
mailbox on the server loop. Selector transitions are translated the way the API server's watch
cache does: an object that stops matching arrives as DELETED, one that starts matching as ADDED.

Must not block the writer: offering an event only queues it and wakes the server loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tradesense_sandbox.kubeapi.selectors import FieldRequirement, Requirement, fields_match, labels_match

if TYPE_CHECKING:
    from tradesense_sandbox.kubeapi.store import WatchEvent


class Watcher:
    """One open watch: filters, pending events, and a wake-up for the serving coroutine."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, allow_bookmarks: bool = False) -> None:
        self.loop = loop
        self.allow_bookmarks = allow_bookmarks
        self.namespace: str | None = None
        self._labels: list[Requirement] = []
        self._fields: list[FieldRequirement] = []
        self._pending: deque[tuple[str, Mapping[str, Any]]] = deque()
        self._mutex = threading.Lock()
        self.wakeup = asyncio.Event()
        self.closed = False
        self.expired = False

    def configure(self, namespace: str | None, labels: list[Requirement], fields: list[FieldRequirement]) -> None:
        self.namespace, self._labels, self._fields = namespace, labels, fields

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self._labels, meta.get("labels")) and fields_match(self._fields, obj)

    def offer(self, event: WatchEvent) -> None:
        """Queue a store event if it concerns this watch (called under the store lock)."""
        now_matches = self.matches(event.obj)
        if event.type == "MODIFIED" and event.old is not None:
            before = self.matches(event.old)
            if before and not now_matches:
                self.push("DELETED", event.obj)
            elif now_matches and not before:
                self.push("ADDED", event.obj)
            elif now_matches:
                self.push("MODIFIED", event.obj)
        elif now_matches:
            self.push(event.type, event.obj)

    def push(self, event_type: str, obj: Mapping[str, Any]) -> None:
        with self._mutex:
            self._pending.append((event_type, obj))
        self._wake()

    def push_initial_end(self, resource_version: int) -> None:
        """The BOOKMARK that ends `sendInitialEvents=true` streaming."""
        self.push(
            "BOOKMARK",
            {
                "metadata": {"resourceVersion": str(resource_version), "annotations": {"k8s.io/initial-events-end": "true"}},
            },
        )

    def drain(self) -> list[tuple[str, Mapping[str, Any]]]:
        with self._mutex:
            events = list(self._pending)
            self._pending.clear()
            self.wakeup.clear()
            return events

    def idle(self) -> bool:
        with self._mutex:
            return not self._pending

    def close(self, *, expired: bool = False) -> None:
        """End the stream (fault injection, CRD removal, server stop); `expired` sends a 410 first."""
        self.closed = True
        self.expired = self.expired or expired
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the server loop is gone; nobody reads this watch any more
            self.loop.call_soon_threadsafe(self.wakeup.set)
