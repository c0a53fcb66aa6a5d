"""Posting a message: the sender's rate limit, then the group-commit writer; the room hears it after commit."""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chat import metrics
from chat.domain import mentions, services, uploads
from chat.models import Message, Room
from chat.per_loop import PerLoop
from chat.protocol import outbound
from chat.protocol.errors import ChatError
from chat.ratelimit import get_rate_limiter
from chat.realtime import broadcaster
from chat.store.writer import MessageWriter

log = logging.getLogger(__name__)


async def message_post(*, room: Room, user: AbstractBaseUser, body: str, client_id: str | None,
                       attachment: uploads.UploadedFile | None = None) -> asyncio.Future:
    """Queue a message for the next batch; return the future of its (frame, created) answer.

    The sender's rate-limit token comes first. A resent client_id that is already stored
    costs nothing: with the bucket empty it is answered with its stored message, not refused.
    """
    if not await get_rate_limiter().take(f"{room.slug}:{user.pk}"):
        stored = client_id is not None and await database_sync_to_async(services.message_stored_frame)(
            room=room, user=user, client_id=client_id)
        if not stored:
            raise _rate_limited(room, user, client_id)
        answered = asyncio.get_running_loop().create_future()
        answered.set_result((stored, False))
        return answered
    # Only a body with an `@` looks for whom it mentions, in the process's members of the room
    # (read from the database when this process has not got them fresh).
    mentioned = ""
    if "@" in body and mentions.candidates(body):
        members = mentions.members_cached(room.slug)
        if members is None:
            members = await database_sync_to_async(mentions.members_load)(room_id=room.pk, slug=room.slug)
        mentioned = mentions.resolve_among(members, body)
    draft = services.MessageDraft(room=room, user=user, body=body, client_id=client_id, attachment=attachment,
                                  mentions=mentioned)
    return _writers.get().submit(draft)


async def message_change(*, room: Room, user: AbstractBaseUser, message_id: object, body: str | None,
                         client_id: str | None) -> outbound.Frame:
    """Edit (body given) or delete (body None) a message, then tell the room its new state; return that frame.

    An edit or a deletion takes a rate-limit token like a message.
    """
    if not await get_rate_limiter().take(f"{room.slug}:{user.pk}"):
        raise _rate_limited(room, user, client_id)
    try:
        frame, mentioned_before = await database_sync_to_async(services.message_change)(
            room=room, actor=user, message_id=message_id, body=body)
    except ChatError as exc:
        exc.client_id = exc.client_id or client_id
        raise
    await broadcaster.room_broadcast(room=room.slug, frame=frame, mentioned_before=mentioned_before)
    return frame


def _rate_limited(room: Room, user: AbstractBaseUser, client_id: str | None) -> ChatError:
    """The refusal when the sender's bucket is empty (messages, edits and deletions share it)."""
    log.warning("rate limited room=%s user=%s", room.slug, user.pk)
    metrics.RATE_LIMITED.inc()
    return ChatError("rate_limited", "too many messages; slow down (nothing was stored or changed)",
                     client_id=client_id)


async def messages_committed(frames_by_room: dict[str, list[outbound.Frame]]) -> None:
    """Tell each room its newly committed messages, in seq order (the writer calls it before the acks)."""
    await broadcaster.rooms_broadcast_many(frames_by_room)


_writers = PerLoop(lambda: MessageWriter(after_commit=messages_committed))


def messages_moderate_delete(*, message_ids: list[int], actor: AbstractBaseUser) -> int:
    """Delete messages as a moderator (the admin): each as the socket's `delete` does, told to its room; return how many."""
    from asgiref.sync import async_to_sync

    deleted = 0
    for message in Message.objects.filter(pk__in=message_ids, deleted=False).select_related("room"):
        frame, before = services.message_change(room=message.room, actor=actor, message_id=message.pk, body=None)
        deleted += 1
        transaction.on_commit(lambda room=message.room.slug, frame=frame, before=before: async_to_sync(
            broadcaster.room_broadcast)(room=room, frame=frame, mentioned_before=before))
    return deleted
