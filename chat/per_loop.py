"""PerLoop: one object per running event loop (the hub, the writer, the socket index, the rate limiter's batcher)."""

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Make one object per running event loop, on first use; drop those of closed loops."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self.factory = factory
        self._objects: dict[asyncio.AbstractEventLoop, T] = {}

    def get(self) -> T:
        """Return the running loop's object, making it if this is the loop's first call."""
        loop = asyncio.get_running_loop()
        obj = self._objects.get(loop)
        if obj is None:
            for old in [other for other in self._objects if other.is_closed()]:
                del self._objects[old]
            obj = self._objects[loop] = self.factory()
        return obj
