"""Writes: messages (gap-free per-room seq, idempotent client_id), rooms, members, tokens."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Subquery, Value
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.text import slugify

from chat.domain import mentions, selectors, uploads
from chat.models import ApiToken, Attachment, Membership, Message, Room
from chat.protocol import outbound
from chat.protocol.errors import ChatError
from chat.store import queries

TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


def message_stored_frame(*, room: Room, user: AbstractBaseUser, client_id: str) -> outbound.Frame | None:
    """Return the frame of the message the user stored in the room with this client_id, if any."""
    existing = (
        Message.objects.filter(room_id=room.pk, user_id=user.pk, client_id=client_id)
        .select_related("user", "attachment")
        .first()
    )
    return selectors.message_to_frame(existing, room_slug=room.slug) if existing else None


def _seq_take(*, room_id: int, count: int = 1) -> tuple[int, int]:
    """Bump the room's last_seq and last_version by count and return both; the UPDATE holds the row lock until commit."""
    taken = queries.seq_bump(room_id=room_id, count=count)
    if taken is None:
        raise ChatError("not_found", "the room no longer exists")
    return taken


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """A validated message waiting to be stored (chat/writer.py batches these)."""

    room: Room
    user: AbstractBaseUser
    body: str
    client_id: str | None
    attachment: "uploads.UploadedFile | None" = None
    mentions: str = ""  # stored form (chat/domain/mentions.py), resolved before the draft is queued


def message_create_many(*, drafts: list[MessageDraft]) -> list[tuple[outbound.Frame, bool] | ChatError]:
    """Store text messages in one transaction, in order; return each one's frame and newness.

    The group-commit form of message_create, with the same guarantees: each room's seqs
    are consecutive in draft order, and a client_id repeated within the batch answers with
    the first message. A client_id stored before, by an earlier batch, is not looked up
    here (a SELECT per message for a rare retry): the unique constraint fails the whole
    batch with IntegrityError, and chat/writer.py then stores the drafts one by one, which
    answers the retry with the stored message. A room deleted meanwhile gets a not_found
    ChatError for each of its drafts; the other rooms' messages are stored.
    """
    batch = _Batch(drafts)
    return batch.results(queries.messages_store(groups=batch.groups, created=batch.created))


async def message_create_many_async(conn, *, drafts: list[MessageDraft]) -> list[tuple[outbound.Frame, bool] | ChatError]:
    """message_create_many on PostgreSQL from the event loop, on conn (a psycopg AsyncConnection)."""
    batch = _Batch(drafts)
    return batch.results(await queries.messages_store_async(conn, groups=batch.groups, created=batch.created))


class _Batch:
    """A batch of drafts: the rows to insert per room, and the answers once they are stored."""

    def __init__(self, drafts: list[MessageDraft]) -> None:
        if any(d.attachment is not None for d in drafts):
            raise ValueError("message_create_many stores text messages only")
        self.drafts = drafts
        self.created = timezone.now()
        first_of: dict[tuple[int, int, str], int] = {}  # (room, user, client_id) -> first draft
        self.repeats: list[tuple[int, int]] = []
        self.fresh: dict[int, list[int]] = {}  # room id -> drafts to insert, in order
        for i, d in enumerate(drafts):
            if d.client_id is not None:
                key = (d.room.pk, d.user.pk, d.client_id)
                if key in first_of:
                    self.repeats.append((i, first_of[key]))
                    continue
                first_of[key] = i
            self.fresh.setdefault(d.room.pk, []).append(i)
        self.groups = {room_id: [(drafts[i].user.pk, drafts[i].body, drafts[i].client_id, drafts[i].mentions)
                                 for i in indexes]
                       for room_id, indexes in self.fresh.items()}

    def results(self, stored: dict[int, list[tuple[int, int, int]]]) -> list:
        results: list = [None] * len(self.drafts)
        for room_id, indexes in self.fresh.items():
            rows = stored.get(room_id)
            for n, i in enumerate(indexes):
                if rows is None:
                    results[i] = ChatError("not_found", "the room no longer exists")
                else:
                    message_id, seq, version = rows[n]
                    results[i] = (_message_frame(self.drafts[i], message_id=message_id, seq=seq, version=version,
                                                 created=self.created), True)
        for i, first in self.repeats:
            results[i] = results[first] if isinstance(results[first], ChatError) else (results[first][0], False)
        return results


def _message_frame(d: MessageDraft, *, message_id: int, seq: int, version: int, created,
                   attachment=None) -> outbound.Frame:
    return outbound.message_obj(
        message_id=message_id,
        seq=seq,
        version=version,
        room=d.room.slug,
        user=outbound.user_obj(user_id=d.user.pk, username=d.user.get_username()),
        body=d.body,
        created=created,
        client_id=d.client_id,
        attachment=attachment,
        mentions=mentions.decode(d.mentions),
    )


def message_create(
    *,
    room: Room,
    user: AbstractBaseUser,
    body: str,
    client_id: str | None,
    attachment: "uploads.UploadedFile | None" = None,
    mentioned: str = "",
) -> tuple[outbound.Frame, bool]:
    """Store a message with the room's next seq; return its frame and whether it is new.

    A client_id the user already used in the room returns the stored message instead.
    The seq is taken by an UPDATE ... RETURNING inside the transaction that inserts the
    message: PostgreSQL holds the room row lock until commit and SQLite (IMMEDIATE mode)
    holds the database write lock, so seqs are gap-free and commit-ordered on both.
    """
    # The bytes are written before the transaction, so the room's row lock is never held
    # during file I/O; any path that does not commit them deletes them.
    # The hot statements are hand-written SQL (chat/queries.py): the ORM would triple the cost.
    created = timezone.now()
    saved = uploads.attachment_save(attachment, when=created) if attachment else None
    try:
        with transaction.atomic():
            if client_id is not None and queries.message_client_id_used(
                room_id=room.pk, user_id=user.pk, client_id=client_id
            ):
                uploads.attachment_discard(saved)
                return message_stored_frame(room=room, user=user, client_id=client_id), False
            seq, version = _seq_take(room_id=room.pk)
            message_id = queries.message_insert(
                room_id=room.pk, seq=seq, version=version, user_id=user.pk, body=body, client_id=client_id,
                created=created, mentions=mentioned,
            )
            stored = None
            if saved:
                message = Message(id=message_id, room_id=room.pk, seq=seq, version=version, user_id=user.pk,
                                  body=body, client_id=client_id, created=created, mentions=mentioned)
                stored = uploads.attachment_create(message=message, upload=attachment, saved=saved)
    except IntegrityError:
        uploads.attachment_discard(saved)
        # A concurrent request with the same client_id won the race; its row is the answer.
        existing = message_stored_frame(room=room, user=user, client_id=client_id) if client_id else None
        if existing is None:
            raise
        return existing, False
    except BaseException:
        uploads.attachment_discard(saved)
        raise
    draft = MessageDraft(room=room, user=user, body=body, client_id=client_id, mentions=mentioned)
    attachment_frame = selectors.attachment_obj(stored, room_slug=room.slug) if stored else None
    return _message_frame(draft, message_id=message_id, seq=seq, version=version, created=created,
                          attachment=attachment_frame), True


def message_change(*, room: Room, actor: AbstractBaseUser, message_id: object, body: str | None
                   ) -> tuple[outbound.Frame, list[int]]:
    """Edit a message (body given) or delete it (body None); return its new frame and whom it mentioned before.

    An edit finds the mentions afresh; a deletion drops them. Who was mentioned before lets
    the user sockets move their mention counts exactly (chat/realtime/tally.py).

    Who: the author edits, within CHAT_EDIT_WINDOW seconds of posting (0: no edits); the
    author, the room's creator or staff delete. The change takes the room's next version
    under the room's row lock, in the transaction that writes it, so versions stay gapless
    in commit order, as seqs do. A deletion empties the body and removes the attachment;
    its file is deleted once that commits. The seq stays.
    """
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ChatError("bad_request", "`id` must be an integer")
    with transaction.atomic():
        version = queries.version_bump(room_id=room.pk)  # the room's lock first: changes queue here
        if version is None:
            raise ChatError("not_found", "the room no longer exists")
        # The room's row lock (just taken) serialises every change to its messages.
        message = Message.objects.select_related("user").filter(room_id=room.pk, pk=message_id).first()
        if message is None or message.deleted:
            raise ChatError("not_found", "no such message in this room")
        now = timezone.now()
        before = mentions.ids(message.mentions)
        if body is not None:
            if message.user_id != actor.pk:
                raise ChatError("forbidden", "only the author may edit a message")
            window = settings.CHAT_EDIT_WINDOW
            if window <= 0 or now - message.created > timedelta(seconds=window):
                raise ChatError("too_late", "the edit window has passed" if window > 0 else "edits are off here")
            message.body, message.edited = body, now
            message.version = version
            message.mentions = mentions.resolve(room_id=room.pk, slug=room.slug, body=body)
            message.save(update_fields=["body", "edited", "version", "mentions"])
        else:
            if not (message.user_id == actor.pk or selectors.room_user_can_manage(room=room, user=actor)):
                raise ChatError("forbidden", "only the author, the room's creator or staff may delete a message")
            files = list(Attachment.objects.filter(message_id=message.pk).values_list("file", flat=True))
            Attachment.objects.filter(message_id=message.pk).delete()
            message.body, message.deleted, message.version, message.mentions = "", True, version, ""
            message.save(update_fields=["body", "deleted", "version", "mentions"])
            transaction.on_commit(lambda: [uploads.attachment_discard(name) for name in files])
    return selectors.message_to_frame(message, room_slug=room.slug), before


def room_create(*, user: AbstractBaseUser, name: object, slug: object = None, private: object = False) -> Room:
    """Create a room with the user as its first member."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise ChatError("bad_request", "name must be 1 to 100 characters")
    name = name.strip()
    if slug in (None, ""):
        slug = slugify(name)[:64]
    if not isinstance(slug, str) or slugify(slug) != slug or not slug or len(slug) > 64:
        raise ChatError("bad_request", "slug must be 1 to 64 lowercase letters, digits, hyphens or underscores")
    if slug.startswith(DM_SLUG_PREFIX):
        raise ChatError("bad_request", f"slugs starting {DM_SLUG_PREFIX!r} are kept for direct messages")
    if not isinstance(private, bool):
        raise ChatError("bad_request", "private must be a boolean")
    try:
        with transaction.atomic():
            room = Room.objects.create(slug=slug, name=name, private=private, created_by=user)
            Membership.objects.create(room=room, user=user)
    except IntegrityError:
        raise ChatError("bad_request", f"a room with slug {slug!r} already exists") from None
    return room


def membership_add(*, room: Room, actor: AbstractBaseUser, username: object) -> tuple[Membership, bool]:
    """Add a user to a room; only its creator or staff may. Return the membership and whether it is new."""
    if room.dm:
        raise ChatError("forbidden", "a direct message's members cannot change")
    if not selectors.room_user_can_manage(room=room, user=actor):
        raise ChatError("forbidden", "only the room's creator or staff may add members")
    if not isinstance(username, str) or not username:
        raise ChatError("bad_request", "username must be a non-empty string")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ChatError("bad_request", f"no user named {username!r}")
    return _membership_make(room=room, user=user)


def _membership_make(*, room: Room, user: AbstractBaseUser) -> tuple[Membership, bool]:
    """Get or create a membership; a new member starts with the history read (what came before is not news)."""
    last_seq = Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).first()
    if last_seq is None:
        raise ChatError("not_found", "the room no longer exists")
    return Membership.objects.get_or_create(room=room, user=user, defaults={"last_read": last_seq})


def room_join(*, room: Room, user: AbstractBaseUser) -> bool:
    """Join a public room again (its history counts as read); return whether the user was not a member yet."""
    if room.private:
        return False  # a private room is joined by being added
    try:
        return _membership_make(room=room, user=user)[1]
    except ChatError:
        return False  # deleted meanwhile: posting there fails on its own


def read_advance(*, room: Room, user: AbstractBaseUser, seq: object) -> outbound.Frame | None:
    """Raise the user's read cursor in the room to min(seq, the room's last seq); return the new state.

    A cursor never moves back, so a stale read from another tab changes nothing (None); a
    user who has not joined the room has no cursor to move (None).
    """
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ChatError("bad_request", "`seq` must be a non-negative integer")
    target = Least(Value(seq), Subquery(Room.objects.filter(pk=room.pk).values("last_seq")))
    moved = (Membership.objects.filter(room_id=room.pk, user_id=user.pk)
             .filter(last_read__lt=target).update(last_read=target))
    return selectors.room_state(user=user, room_id=room.pk) if moved else None


def membership_remove(*, room: Room, actor: AbstractBaseUser, username: object) -> None:
    """Remove a user from a room: its creator or staff may remove anyone, a member may remove themselves."""
    if not isinstance(username, str) or not username:
        raise ChatError("bad_request", "username must be a non-empty string")
    if room.dm:
        raise ChatError("forbidden", "a direct message's members cannot change")
    leaving = actor.is_authenticated and actor.get_username() == username
    if not leaving and not selectors.room_user_can_manage(room=room, user=actor):
        raise ChatError("forbidden", "only the room's creator or staff may remove members")
    deleted, _ = Membership.objects.filter(room=room, user__username=username).delete()
    if not deleted:
        raise ChatError("not_found", f"{username!r} is not a member of this room")


DM_SLUG_PREFIX = "dm-"


def dm_open(*, user: AbstractBaseUser, username: object) -> tuple[Room, bool]:
    """Return the one DM room of the user and another user, creating it if need be; and whether it is new.

    Two users who start a DM with each other at the same moment get the same room: the
    pair's key is unique, so the second insert fails and finds the first one's room.
    """
    if not isinstance(username, str) or not username:
        raise ChatError("bad_request", "username must be a non-empty string")
    other = get_user_model().objects.filter(username=username, is_active=True).first()
    if other is None:
        raise ChatError("not_found", f"no user named {username!r}")
    if other.pk == user.pk:
        raise ChatError("bad_request", "a direct message needs another user")
    low, high = sorted((user.pk, other.pk))
    key = f"{low}-{high}"
    room = Room.objects.filter(dm_key=key).first()
    if room is not None:
        return room, False
    try:
        with transaction.atomic():
            room = Room.objects.create(slug=f"{DM_SLUG_PREFIX}{key}", name=f"{user.get_username()}, {username}",
                                       private=True, dm=True, dm_key=key, created_by=user)
            # One by one, not bulk: each membership's signal tells that user's sockets (the sidebar).
            Membership.objects.create(room=room, user_id=low)
            Membership.objects.create(room=room, user_id=high)
    except IntegrityError:
        room = Room.objects.filter(dm_key=key).first()
        if room is None:  # the slug, not the pair, was taken
            raise ChatError("bad_request", f"the room {DM_SLUG_PREFIX}{key} exists and is not a DM") from None
        return room, False
    return room, True


def _token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """Issue a new token; the raw value is returned once and never stored."""
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:8], digest=_token_digest(raw))
    return token, raw


def token_authenticate(*, raw: str) -> AbstractBaseUser | None:
    """Return the active user a raw token belongs to, or None if unknown, revoked or inactive."""
    found = token_identify(raw=raw)
    return found[0] if found else None


def token_identify(*, raw: str) -> tuple[AbstractBaseUser, int] | None:
    """Return (user, token id) of a live token of an active user, or None."""
    if not raw or len(raw) > 200:
        return None
    now = timezone.now()
    found = queries.token_user(digest=_token_digest(raw), stale_before=now - TOKEN_TOUCH_INTERVAL)
    if found is None:
        return None
    token_id, stale, user = found
    if stale:
        ApiToken.objects.filter(pk=token_id).update(last_used=now)
    return user, token_id


def token_revoke(*, token: ApiToken) -> None:
    """Revoke a token; sockets opened with it keep running until they close."""
    tokens_revoke(token_ids=[token.pk])


def tokens_revoke(*, token_ids: list[int]) -> int:
    """Revoke tokens (the admin's action); return how many were selected."""
    return ApiToken.objects.filter(pk__in=token_ids).update(revoked=True)
