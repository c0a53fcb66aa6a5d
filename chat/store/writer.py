"""Group commit: messages that arrive while one transaction runs are stored together by the next.

The writer keeps one batch in flight per process: the first message goes at once, and
whatever arrives meanwhile, from any socket, waits and goes in the next batch, with one seq
UPDATE per room and one multi-row INSERT. Nothing waits for a timer, so a lone message
costs one transaction, and under load the cost per message falls with the batch size.

After a batch commits, the after_commit hook gets its new messages by room in seq order
(chat/actions/messages.py broadcasts them), then each submitter's future resolves (the ack). A batch that one draft spoils (a client_id stored before, a
value the database refuses) rolls back whole; its drafts are then stored one by one with
services.message_create, so only the culprit gets the error and a retried client_id gets
its stored message. On PostgreSQL a batch is one round trip (chat/store/queries.py), made from
the event loop on the writer's own connection, with no trip to the database thread.
"""

import logging
from collections.abc import Awaitable, Callable

import psycopg
from channels.db import database_sync_to_async
from django.db import DatabaseError, DataError, IntegrityError, connection

from chat import metrics
from chat.batching import Batcher
from chat.domain import services
from chat.protocol import outbound

log = logging.getLogger(__name__)


class MessageWriter(Batcher[services.MessageDraft, tuple[outbound.Frame, bool]]):
    """One per event loop: drafts queue here and at most one batch is in the database."""

    max_batch = 200  # drafts per transaction: bounds the INSERT's parameters and the lock time

    def __init__(self, after_commit: Callable[[dict[str, list[outbound.Frame]]], Awaitable[None]]) -> None:
        super().__init__()
        self.after_commit = after_commit
        self._pg: psycopg.AsyncConnection | None = None

    async def flush(self, drafts: list[services.MessageDraft]) -> list[tuple[outbound.Frame, bool] | Exception]:
        metrics.BATCH_SIZE.observe(len(drafts))
        with metrics.timed(metrics.COMMIT_SECONDS):
            if connection.vendor == "postgresql" and all(d.attachment is None for d in drafts):
                results = await self._store_on_loop(drafts)
            else:
                results = await database_sync_to_async(store)(drafts)
        # New messages go to the hook per room in seq order, before any ack; a failed
        # broadcast is logged there and the acks stand (rooms recover by seq).
        by_room: dict[str, list[outbound.Frame]] = {}
        for draft, result in zip(drafts, results, strict=True):
            if not isinstance(result, Exception) and result[1]:
                by_room.setdefault(draft.room.slug, []).append(result[0])
        if by_room:
            metrics.MESSAGES_STORED.inc(sum(map(len, by_room.values())))
            await self.after_commit(by_room)
        return results

    async def _store_on_loop(self, drafts: list[services.MessageDraft]) -> list:
        """Store a text batch on PostgreSQL from the event loop, on the writer's own connection.

        A psycopg AsyncConnection needs no trip to Django's database thread (which costs as
        much as the statement, bench/FINDINGS.md). The answers and the fallbacks are store()'s.
        """
        try:
            if self._pg is None or self._pg.closed:
                params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
                self._pg = await psycopg.AsyncConnection.connect(
                    **params, autocommit=True, cursor_factory=psycopg.AsyncClientCursor)
            return await services.message_create_many_async(self._pg, drafts=drafts)
        except (psycopg.IntegrityError, psycopg.DataError):
            return await database_sync_to_async(_store_each)(drafts)  # see _store_run
        except psycopg.Error as exc:
            if self._pg is not None and self._pg.broken:
                self._pg = None  # the next batch connects again
            log.warning("batch of %d not stored: %s", len(drafts), exc)
            return [DatabaseError(str(exc))] * len(drafts)


def store(drafts: list[services.MessageDraft]) -> list[tuple[outbound.Frame, bool] | Exception]:
    """Store drafts in order, text runs as one transaction each; return a result or an exception per draft."""
    results: list[tuple[outbound.Frame, bool] | Exception] = []
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
    try:
        return services.message_create_many(drafts=drafts)
    except (IntegrityError, DataError):
        # One draft spoiled the batch (a client_id stored before, say) and nothing was
        # stored: one by one, each draft gets its own answer.
        return _store_each(drafts)
    except Exception as exc:  # noqa: BLE001 - every failure becomes each draft's answer
        # Anything else (the database went away) is every draft's answer. No retry one by
        # one: if the commit itself went through unseen, that would store them twice.
        return [exc] * len(drafts)


def _store_each(drafts: list[services.MessageDraft]) -> list:
    return [_store_one(draft) for draft in drafts]


def _store_one(draft: services.MessageDraft):
    try:
        return services.message_create(
            room=draft.room, user=draft.user, body=draft.body, client_id=draft.client_id, attachment=draft.attachment,
            mentioned=draft.mentions)
    except Exception as exc:  # noqa: BLE001 - the draft's answer (an error frame), not a crash
        return exc
