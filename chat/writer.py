"""Group commit: messages that arrive while one transaction runs are stored together by the next.

Each stored message used to cost a trip to the database thread and its own transaction
(BEGIN, the seq UPDATE, the INSERT, COMMIT). The writer keeps one batch in flight per
process: the first message goes at once, and whatever arrives meanwhile, from any socket,
waits and goes in the next batch, with one seq UPDATE per room and one multi-row INSERT.
Nothing waits for a timer, so a lone message is as fast as before.

After a batch commits, its new messages are broadcast in seq order, then each submitter's
future resolves (the ack). A batch that fails rolls back whole; its drafts are then stored
one by one with services.message_create, so only the culprit gets the error.
"""

import asyncio
import logging

from channels.db import database_sync_to_async

from chat import broadcast, events, services
from chat.loops import PerLoop

log = logging.getLogger(__name__)

MAX_BATCH = 200  # drafts per transaction: bounds the INSERT's parameters and the lock time


class MessageWriter:
    """One per event loop: a queue of drafts and at most one batch in the database."""

    def __init__(self) -> None:
        self._queue: list[tuple[services.MessageDraft, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    def submit(self, draft: services.MessageDraft) -> asyncio.Future:
        """Queue a draft; the future resolves to (frame, created) once stored and broadcast."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((draft, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="chat-writer")
        return future

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                results = await database_sync_to_async(store)([draft for draft, _ in batch])
            except BaseException as exc:  # the thread hop itself failed, or we are cancelled
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("writer stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            # New messages go out per room in seq order, several per channel-layer event; a
            # failed broadcast is logged there and the acks stand (rooms recover by seq).
            by_room: dict[str, list[events.Frame]] = {}
            for (draft, _), result in zip(batch, results):
                if not isinstance(result, Exception) and result[1]:
                    by_room.setdefault(draft.room.slug, []).append(result[0])
            for room, frames in by_room.items():
                await broadcast.room_broadcast_many(room=room, frames=frames)
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def store(drafts: list[services.MessageDraft]) -> list[tuple[events.Frame, bool] | Exception]:
    """Store drafts in order, text runs as one transaction each; return a result or an exception per draft."""
    results: list[tuple[events.Frame, bool] | Exception] = []
    run: list[services.MessageDraft] = []
    for draft in [*drafts, None]:
        if draft is not None and draft.attachment is None:
            run.append(draft)
            continue
        if run:
            results += _store_run(run)
            run = []
        if draft is not None:
            results.append(_store_one(draft))
    return results


def _store_run(drafts: list[services.MessageDraft]) -> list:
    if len(drafts) > 1:
        try:
            return services.message_create_many(drafts=drafts)
        except Exception:
            pass  # one draft spoiled the batch; the one-by-one pass below says which
    return [_store_one(draft) for draft in drafts]


def _store_one(draft: services.MessageDraft):
    try:
        return services.message_create(
            room=draft.room, user=draft.user, body=draft.body, client_id=draft.client_id, attachment=draft.attachment
        )
    except Exception as exc:
        return exc


_writers = PerLoop(MessageWriter)


def get_writer() -> MessageWriter:
    """Return this event loop's writer."""
    return _writers.get()
