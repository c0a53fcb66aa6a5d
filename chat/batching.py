"""Batcher: the group-commit pattern the message writer and the Redis rate limiter share.

One call in flight, and what arrives meanwhile goes together in the next.
"""

import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Submit items one by one; flush() handles them in batches, with one flush in flight at a time.

    The first item goes out on the loop's next turn, so whatever else is submitted in the
    same turn (frames read from other sockets in one poll) joins it; items that arrive while
    a flush runs wait for it and go together in the next. Nothing waits for a timer, so a
    lone item costs one call, and under load the cost per item falls with the batch size.
    flush() returns one result or one exception per item, in order; an exception raised by
    flush() itself fails the whole batch.

    Methods that child classes must implement: flush.
    """

    max_batch = 200

    def __init__(self) -> None:
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    def submit(self, item: Item) -> asyncio.Future:
        """Queue an item; the future resolves to its result (or raises its exception)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=type(self).__name__)
        return future

    async def flush(self, items: list[Item]) -> list[Result | Exception]:
        raise NotImplementedError

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                results = await self.flush([item for item, _ in batch])
            except BaseException as exc:  # the flush failed whole, or we are cancelled
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("batcher stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its submitter went away (cancelled)
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
