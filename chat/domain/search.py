"""Message search (protocol section 12): the rooms the caller may read, newest first, 20 a page.

On PostgreSQL it is full-text search: `to_tsvector('simple', body) @@ websearch_to_tsquery(...)`,
the very expression of the GIN index migration 0006 creates, so the index serves it; the
query takes what people type ("quoted phrases", -excluded, or). On SQLite it is a plain
case-insensitive match of the text.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Q

from chat.domain import selectors
from chat.models import Message, Room
from chat.protocol import outbound
from chat.protocol.errors import ChatError

PAGE = 20
MAX_QUERY_CHARS = 200


def readable_rooms(user: AbstractBaseUser):
    """The rooms the user may read: public ones and private ones they belong to."""
    return Room.objects.filter(Q(private=False) | Q(memberships__user_id=user.pk))


def search(*, user: AbstractBaseUser, q: object, room: str | None = None, before: int | None = None
           ) -> tuple[list[outbound.Frame], bool]:
    """Return up to PAGE messages matching q, newest first, with ids below before; and whether more exist."""
    if not isinstance(q, str) or not q.strip():
        raise ChatError("bad_request", "`q` must be some text to search for")
    q = q.strip()
    if len(q) > MAX_QUERY_CHARS:
        raise ChatError("bad_request", f"`q` is limited to {MAX_QUERY_CHARS} characters")
    rooms = readable_rooms(user)
    if room is not None:
        found = Room.objects.filter(slug=room).first()
        if found is None:
            raise ChatError("not_found", "no such room")
        if not selectors.room_user_can_access(room=found, user=user):
            raise ChatError("forbidden", "this room is private")
        rooms = rooms.filter(pk=found.pk)
    messages = Message.objects.filter(room_id__in=rooms.values("pk"), deleted=False)
    if before is not None:
        messages = messages.filter(pk__lt=before)
    if connection.vendor == "postgresql":
        messages = messages.extra(where=["to_tsvector('simple', body) @@ websearch_to_tsquery('simple', %s)"],
                                  params=[q])
    else:
        messages = messages.filter(body__icontains=q)
    rows = list(messages.select_related("user", "attachment", "room").order_by("-pk")[: PAGE + 1])
    return [selectors.message_to_frame(m, room_slug=m.room.slug) for m in rows[:PAGE]], len(rows) > PAGE


def users_matching(*, user: AbstractBaseUser, q: object) -> list[outbound.User]:
    """Return at most 20 active users whose username starts with q (case-insensitive), not the caller."""
    from django.contrib.auth import get_user_model

    if not isinstance(q, str) or not q.strip():
        return []  # never the whole user table
    rows = (get_user_model().objects.filter(is_active=True, username__istartswith=q.strip()[:150])
            .exclude(pk=user.pk).order_by("username").values_list("pk", "username")[:settings.CHAT_USER_SEARCH_MAX])
    return [outbound.user_obj(user_id=pk, username=name) for pk, name in rows]
