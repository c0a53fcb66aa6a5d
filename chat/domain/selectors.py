"""Reads: rooms, access checks and message pages, returned as protocol-shaped dicts."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse

from chat.domain import auth, mentions
from chat.models import Attachment, Membership, Message, Room
from chat.protocol import outbound
from chat.store import loop_reads, queries


def room_get(*, slug: str) -> Room | None:
    """Return the room with this slug, or None."""
    return Room.objects.filter(slug=slug).first()


def access_allowed(*, authenticated: bool, private: bool, member: bool) -> bool:
    """The access rule: a signed-in user reads and posts in public rooms and in private rooms they belong to."""
    return authenticated and (member or not private)


def room_user_can_access(*, room: Room, user: AbstractBaseUser) -> bool:
    """Tell whether the user may read and post in the room."""
    member = room.private and user.is_authenticated and room.memberships.filter(user_id=user.pk).exists()
    return access_allowed(authenticated=user.is_authenticated, private=room.private, member=bool(member))


def room_with_access(*, slug: str, user: AbstractBaseUser) -> tuple[Room, bool, int | None] | None:
    """Return the room with this slug, whether the user may enter it and their read cursor (None: not joined).

    One query; None when there is no such room.
    """
    found = queries.room_with_membership(slug=slug, user_id=user.pk)
    if found is None:
        return None
    room, last_read = found
    allowed = access_allowed(authenticated=user.is_authenticated, private=room.private, member=last_read is not None)
    return room, allowed, last_read


@dataclass(frozen=True, slots=True)
class RoomOpening:
    """What a room socket's handshake learns in its one database trip."""

    identity: auth.Identity
    room: Room | None = None  # None: no such room (or the user is not authenticated)
    allowed: bool = False
    # (messages for hello, last_seq, last_version, truncated); only when allowed
    snapshot: tuple[list[outbound.Frame], int, int, bool] | None = None
    last_read: int = 0
    joined_now: bool = False  # a public room this open joined (protocol section 11)


def room_socket_open(*, slug: str, credentials: auth.Credentials, after: int | None,
                     since: int | None = None) -> RoomOpening:
    """Authenticate, find the room, check access and take hello's snapshot: one trip to the database thread.

    Opening a public room joins it: the user's read cursor starts at the room's newest seq.
    On SQLite the room socket first runs it on the event loop (chat/store/loop_reads.py),
    where anything past the reads (the join's write, a long recovery page) makes it go to
    the thread instead.
    """
    identity = auth.authenticate(credentials)
    user = identity.user
    if not user.is_authenticated:
        return RoomOpening(identity=identity)
    found = room_with_access(slug=slug, user=user)
    if found is None:
        return RoomOpening(identity=identity)
    room, allowed, last_read = found
    if not allowed:
        return RoomOpening(identity=identity, room=room)
    # last_seq and last_version come from the room row, read before the messages: they never
    # exceed what the messages hold.
    last_seq, last_version = room.last_seq, room.last_version
    joined_now = last_read is None
    if joined_now:
        # Another tab may join at the same moment: the unique constraint keeps one row.
        Membership.objects.bulk_create([Membership(room_id=room.pk, user_id=user.pk, last_read=last_seq)],
                                       ignore_conflicts=True)
        mentions.members_forget(room.slug)  # here at once; other processes when the join reaches them
        last_read = last_seq
    if after is None:
        messages, _ = message_list_latest(room=room, limit=settings.CHAT_HELLO_LATEST) if last_seq else ([], False)
        snapshot = (messages, last_seq, last_version, False)
    elif after >= last_seq and (since is None or since >= last_version):
        # Nothing to send; anything committed from now on arrives through the hub.
        snapshot = ([], last_seq, last_version, False)
    else:
        if loop_reads.on_loop() and (since is not None or last_seq - after > settings.CHAT_HELLO_LATEST):
            raise loop_reads.NeedsThread  # a long recovery page would hold the event loop
        messages, more = message_list_after(room=room, after=after, since=since, limit=settings.CHAT_RECOVERY_MAX)
        snapshot = (messages, last_seq, last_version, more)
    return RoomOpening(identity=identity, room=room, allowed=True, snapshot=snapshot, last_read=last_read,
                       joined_now=joined_now)


def room_user_can_manage(*, room: Room, user: AbstractBaseUser) -> bool:
    """Tell whether the user may add members: the room's creator or staff."""
    return user.is_authenticated and (user.is_staff or room.created_by_id == user.pk)


def room_list_visible(*, user: AbstractBaseUser) -> list[Room]:
    """List public rooms and the private rooms the user belongs to, by name."""
    return list(Room.objects.filter(Q(private=False) | Q(memberships__user_id=user.pk)).distinct().order_by("name"))


def room_members(*, room: Room) -> list[outbound.User]:
    """List the room's members as user objects, by username."""
    rows = room.memberships.select_related("user").order_by("user__username")
    return [outbound.user_obj(user_id=m.user_id, username=m.user.get_username()) for m in rows]


def attachment_obj(attachment: Attachment, *, room_slug: str) -> outbound.Frame:
    return {
        "url": reverse("chat:attachment", kwargs={"slug": room_slug, "attachment_id": attachment.pk}),
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }


def message_to_frame(message: Message, *, room_slug: str) -> outbound.Frame:
    try:
        attachment = message.attachment
    except Attachment.DoesNotExist:
        attachment = None
    return outbound.message_obj(
        message_id=message.pk,
        seq=message.seq,
        room=room_slug,
        user=outbound.user_obj(user_id=message.user_id, username=message.user.get_username()),
        body=message.body,
        created=message.created,
        client_id=message.client_id,
        attachment=attachment_obj(attachment, room_slug=room_slug) if attachment else None,
        version=message.version,
        edited=message.edited,
        deleted=message.deleted,
        mentions=mentions.decode(message.mentions),
    )


def _page(*, room: Room, newest_first: bool, limit: int, after: int | None = None, before: int | None = None,
          since: int | None = None) -> tuple[list[outbound.Frame], bool]:
    """Fetch up to limit messages plus one to learn whether more exist; return oldest first.

    Hand-written SQL (chat/store/queries.py): every hello runs this, and the ORM cost several
    times the query (bench/FINDINGS.md).
    """
    rows = queries.message_rows(room_id=room.pk, after=after, before=before, since=since, newest_first=newest_first,
                                limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest_first:
        rows.reverse()
    slug = room.slug
    url = _attachment_url(slug)
    return [outbound.message_obj(
        message_id=message_id, seq=seq, room=slug, user=outbound.user_obj(user_id=user_id, username=username),
        body=body, created=created, client_id=client_id, version=version, edited=edited, deleted=deleted,
        mentions=mentions.decode(mentioned),
        attachment=None if attachment_id is None else {
            "url": url.replace(_ATTACHMENT_ID_STAND_IN, str(attachment_id)), "name": name,
            "content_type": content_type, "size": size})
        for (message_id, seq, user_id, username, body, created, client_id, version, edited, deleted, mentioned,
             attachment_id, name, content_type, size) in rows], has_more


_ATTACHMENT_ID_STAND_IN = "987654321"


def _attachment_url(slug: str) -> str:
    return reverse("chat:attachment", kwargs={"slug": slug, "attachment_id": int(_ATTACHMENT_ID_STAND_IN)})


def message_list_latest(*, room: Room, limit: int) -> tuple[list[outbound.Frame], bool]:
    """Return the newest `limit` messages, oldest first, and whether older ones exist."""
    return _page(room=room, newest_first=True, limit=limit)


def message_list_before(*, room: Room, before: int, limit: int) -> tuple[list[outbound.Frame], bool]:
    """Return the newest `limit` messages with seq < before, oldest first, and whether older ones exist."""
    return _page(room=room, before=before, newest_first=True, limit=limit)


def message_list_after(
    *, room: Room, after: int, limit: int, before: int | None = None, since: int | None = None
) -> tuple[list[outbound.Frame], bool]:
    """Return the oldest `limit` messages with seq > after (and < before), and whether more exist.

    With since, older messages changed after that version (edited or deleted) come too, so a
    client that was away sees every change it missed; all oldest seq first.
    """
    return _page(room=room, after=after, since=since, before=before, newest_first=False, limit=limit)


def room_users_allowed(*, slug: str, user_ids: set[int]) -> set[int] | None:
    """Return which of these users may still enter the room (active, and members if it is private); None: no such room."""
    from django.contrib.auth import get_user_model

    room = Room.objects.filter(slug=slug).only("id", "private").first()
    if room is None:
        return None
    active = set(get_user_model().objects.filter(pk__in=user_ids, is_active=True).values_list("pk", flat=True))
    members = set(room.memberships.filter(user_id__in=active).values_list("user_id", flat=True)) if room.private else set()
    return {u for u in active if access_allowed(authenticated=True, private=room.private, member=u in members)}


# -- read state (protocol section 11) ------------------------------------------------------


def room_states(*, user: AbstractBaseUser, room_ids: list[int] | None = None) -> list[outbound.Frame]:
    """Return the state of each room the user joined (or of those of room_ids), newest activity first.

    Three queries whatever the number of rooms: the memberships with their rooms and exact
    unread and mention counts (from the cursor and seq), then the rooms' newest messages.
    """
    memberships = Membership.objects.filter(user_id=user.pk).select_related("room")
    if room_ids is not None:
        memberships = memberships.filter(room_id__in=room_ids)
    unread = (Message.objects.filter(room_id=OuterRef("room_id"), seq__gt=OuterRef("last_read"), deleted=False)
              .exclude(user_id=user.pk).order_by().values("room_id"))
    mentioned = unread.filter(mentions__contains=mentions.needle(user.pk))  # LIKE '%,<id>:%'
    rows = list(memberships.annotate(
        unread=Coalesce(Subquery(unread.annotate(n=Count("*")).values("n")), 0),
        mentioned=Coalesce(Subquery(mentioned.annotate(n=Count("*")).values("n")), 0)))
    dm_names = dm_names_for(user=user, room_ids=[m.room_id for m in rows if m.room.dm])
    newest = Q(pk__in=[])
    for m in rows:
        if m.room.last_seq:
            newest |= Q(room_id=m.room_id, seq=m.room.last_seq)
    last = {msg.room_id: msg for msg in Message.objects.filter(newest).select_related("user", "attachment")}
    states = []
    for m in rows:
        message = last.get(m.room_id)
        states.append(outbound.room_state(
            room=m.room, name=dm_names.get(m.room_id, m.room.name), last_read=m.last_read, unread=m.unread,
            mentions=m.mentioned,
            last_message=message_to_frame(message, room_slug=m.room.slug) if message else None,
            last_activity=message.created if message else m.room.created))
    # Times are to the millisecond; message ids break a tie in the order messages were stored.
    states.sort(key=lambda state: (state["last_activity"], (state["last_message"] or {}).get("id", 0)), reverse=True)
    return states


def room_state(*, user: AbstractBaseUser, room_id: int) -> outbound.Frame | None:
    """Return the state of one room the user joined, or None if they have not."""
    states = room_states(user=user, room_ids=[room_id])
    return states[0] if states else None


def room_state_by_slug(*, user: AbstractBaseUser, slug: str) -> outbound.Frame | None:
    """Return the state of the room with this slug if the user joined it, else None."""
    room_id = Room.objects.filter(slug=slug).values_list("pk", flat=True).first()
    return None if room_id is None else room_state(user=user, room_id=room_id)


def user_socket_open(*, credentials: auth.Credentials) -> tuple[auth.Identity, list[str]]:
    """Authenticate a user socket and list the slugs of the rooms the user joined (what it must hear)."""
    identity = auth.authenticate(credentials)
    if not identity.user.is_authenticated:
        return identity, []
    slugs = list(Membership.objects.filter(user_id=identity.user.pk).values_list("room__slug", flat=True))
    return identity, slugs


def dm_names_for(*, user: AbstractBaseUser, room_ids: list[int]) -> dict[int, str]:
    """Name each DM after the other user, as the caller sees it (one query; {} for no DMs)."""
    if not room_ids:
        return {}
    return dict(Membership.objects.filter(room_id__in=room_ids).exclude(user_id=user.pk)
                .values_list("room_id", "user__username"))
