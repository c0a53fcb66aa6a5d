"""Reads: rooms, access checks and message pages, returned as protocol-shaped dicts."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.urls import reverse

from chat import events, hotsql
from chat.models import Attachment, Message, Room


def room_get(*, slug: str) -> Room | None:
    """Return the room with this slug, or None."""
    return Room.objects.filter(slug=slug).first()


def room_user_can_access(*, room: Room, user: AbstractBaseUser) -> bool:
    """Tell whether the user may read and post in the room."""
    if not user.is_authenticated:
        return False
    if not room.private:
        return True
    return room.memberships.filter(user_id=user.pk).exists()


def room_with_access(*, slug: str, user: AbstractBaseUser) -> tuple[Room, bool] | None:
    """Return the room with this slug and whether the user may enter it, or None (one query)."""
    found = hotsql.room_with_membership(slug=slug, user_id=user.pk)
    if found is None:
        return None
    room, member = found
    return room, user.is_authenticated and (member or not room.private)


def room_user_can_manage(*, room: Room, user: AbstractBaseUser) -> bool:
    """Tell whether the user may add members: the room's creator or staff."""
    return user.is_authenticated and (user.is_staff or room.created_by_id == user.pk)


def room_list_visible(*, user: AbstractBaseUser) -> list[Room]:
    """List public rooms and the private rooms the user belongs to, by name."""
    return list(Room.objects.filter(Q(private=False) | Q(memberships__user_id=user.pk)).distinct().order_by("name"))


def room_members(*, room: Room) -> list[events.User]:
    """List the room's members as user objects, by username."""
    rows = room.memberships.select_related("user").order_by("user__username")
    return [events.user_obj(user_id=m.user_id, username=m.user.get_username()) for m in rows]


def attachment_obj(attachment: Attachment, *, room_slug: str) -> events.Frame:
    return {
        "url": reverse("chat:attachment", kwargs={"slug": room_slug, "attachment_id": attachment.pk}),
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }


def message_to_frame(message: Message, *, room_slug: str) -> events.Frame:
    try:
        attachment = message.attachment
    except Attachment.DoesNotExist:
        attachment = None
    return events.message_obj(
        message_id=message.pk,
        seq=message.seq,
        room=room_slug,
        user=events.user_obj(user_id=message.user_id, username=message.user.get_username()),
        body=message.body,
        created=message.created,
        client_id=message.client_id,
        attachment=attachment_obj(attachment, room_slug=room_slug) if attachment else None,
    )


def _page(*, room: Room, filters: Q, newest_first: bool, limit: int) -> tuple[list[events.Frame], bool]:
    """Fetch up to limit messages plus one to learn whether more exist; return oldest first."""
    order = "-seq" if newest_first else "seq"
    rows = list(
        Message.objects.filter(filters, room_id=room.pk)
        .select_related("user", "attachment")
        .order_by(order)[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest_first:
        rows.reverse()
    return [message_to_frame(m, room_slug=room.slug) for m in rows], has_more


def message_list_latest(*, room: Room, limit: int) -> tuple[list[events.Frame], bool]:
    """Return the newest `limit` messages, oldest first, and whether older ones exist."""
    return _page(room=room, filters=Q(), newest_first=True, limit=limit)


def message_list_before(*, room: Room, before: int, limit: int) -> tuple[list[events.Frame], bool]:
    """Return the newest `limit` messages with seq < before, oldest first, and whether older ones exist."""
    return _page(room=room, filters=Q(seq__lt=before), newest_first=True, limit=limit)


def message_list_after(
    *, room: Room, after: int, limit: int, before: int | None = None
) -> tuple[list[events.Frame], bool]:
    """Return the oldest `limit` messages with seq > after (and < before), and whether newer ones exist."""
    filters = Q(seq__gt=after)
    if before is not None:
        filters &= Q(seq__lt=before)
    return _page(room=room, filters=filters, newest_first=False, limit=limit)
