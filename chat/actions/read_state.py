"""A user's read state (protocol section 11): cursors moved, rooms joined and left, told to the user's sockets.

Each change is committed, then its new room state goes once to every process on the
channel-layer group the hubs already hear (chat.authority), and each process hands it to
that user's local sockets, room sockets and user sockets alike. Messages do not come this
way: user sockets hear those from the room's own broadcast (chat/realtime/tally.py).
"""

import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from chat.domain import mentions, selectors, services
from chat.models import Membership, Room
from chat.protocol import outbound
from chat.realtime.authority import AUTHORITY_GROUP, USER_EVENT

log = logging.getLogger(__name__)


async def _tell(user_id: int, kind: str, state: outbound.Frame) -> None:
    """kind: "read" (every socket of the user hears it), "joined" or "left" (their user sockets do)."""
    event = {"type": USER_EVENT, "user": user_id, "kind": kind, "state": state}
    try:
        await get_channel_layer().group_send(AUTHORITY_GROUP, event)
    except Exception:  # noqa: BLE001 - the change stands; the user's sockets catch up on their next snapshot
        log.exception("telling user %s of room %s failed", user_id, state.get("slug"))


async def read_advance(*, room: Room, user: AbstractBaseUser, seq: int) -> outbound.Frame | None:
    """Raise the user's cursor in the room to min(seq, last_seq) and tell their sockets; return the new state.

    A cursor never moves back; a read that moves nothing tells no one (None).
    """
    state = await database_sync_to_async(services.read_advance)(room=room, user=user, seq=seq)
    if state is not None:
        await _tell(user.pk, "read", state)
    return state


async def room_joined(*, room: Room, user: AbstractBaseUser, newest: outbound.Frame | None = None) -> None:
    """Tell the user's sockets about a room they just joined by opening it.

    newest: the room's newest message when the caller has it (hello's snapshot): a room just
    joined has nothing unread (the cursor starts at its end), so its state then needs no query.
    """
    if newest is not None or room.last_seq == 0:
        state = outbound.room_state(room=room, last_read=room.last_seq, unread=0, mentions=0, last_message=newest,
                                    last_activity=newest["created"] if newest else room.created)
    else:
        state = await database_sync_to_async(selectors.room_state)(user=user, room_id=room.pk)
    if state is not None:
        await _tell(user.pk, "joined", state)



async def room_join(*, room: Room, user: AbstractBaseUser) -> None:
    """Join a public room again (a user who left it posts in it); the membership's signal tells their sockets."""
    await database_sync_to_async(services.room_join)(room=room, user=user)


# -- memberships made or ended elsewhere (the API, the admin, room creation) --------------


def _on_membership_saved(sender, instance, created, **kwargs):
    if not created:
        return
    room_id, user_id = instance.room_id, instance.user_id
    _forget_members(room_id)

    def send():
        from django.contrib.auth import get_user_model

        user = get_user_model()(pk=user_id)
        state = selectors.room_state(user=user, room_id=room_id)
        if state is not None:
            async_to_sync(_tell)(user_id, "joined", state)

    transaction.on_commit(send)


def _forget_members(room_id: int) -> str | None:
    """This process forgets the room's members at once (the others do when the user event reaches them).

    Returns the room's slug (None: the room is gone).
    """
    slug = Room.objects.filter(pk=room_id).values_list("slug", flat=True).first()
    if slug is not None:
        mentions.members_forget(slug)
    return slug


def _on_membership_deleted(sender, instance, **kwargs):
    slug = _forget_members(instance.room_id)
    if slug is not None:
        user_id = instance.user_id
        transaction.on_commit(lambda: async_to_sync(_tell)(user_id, "left", outbound.room_left(slug=slug)))


def connect_signals() -> None:
    """Hook the receivers above up (ChatConfig.ready)."""
    post_save.connect(_on_membership_saved, sender=Membership, dispatch_uid="chat.read_state.membership_saved")
    post_delete.connect(_on_membership_deleted, sender=Membership, dispatch_uid="chat.read_state.membership_deleted")
