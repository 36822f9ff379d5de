"""A client that holds connections open across calls and is released by `async with` or `aclose()`.

Owns only that lifecycle (enter returns the client, exit closes it); what `aclose` releases is each client's own.
Must not do I/O itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class AsyncClosing(ABC):
    """`async with Client(...) as client:` closes the client's connections when the block ends, however it ends."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def aclose(self) -> None:
        """Release the client's connections."""
