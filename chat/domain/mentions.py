"""Mentions (protocol section 12): `@username` of a member of the room, found on the server and stored.

A candidate starts after an `@` that does not follow a username character (so an e-mail
address is not a mention) and runs over username characters; trailing punctuation that a
username may hold (`.`, `+`, `-`, `@`) is tried off one character at a time, so "@bob."
and "@bob" both mention bob. Matching is case-insensitive and only members count. At most
MAX_MENTIONS users per message. A message stores them in one text column,
",<id>:<username>,...,", which the unread-mention count filters with LIKE '%,<id>:%' (needle()).
"""

import re
import time

from chat.models import Membership
from chat.protocol import outbound

MAX_MENTIONS = 50
_USERNAME_CHARS = r"\w.@+-"
_CANDIDATE = re.compile(rf"(?<![{_USERNAME_CHARS}])@([{_USERNAME_CHARS}]{{1,150}})")
_TRAILING = ".+-@"


def candidates(body: str) -> list[str]:
    """Return the lowercase names a body may mention, each once, in order (every trailing-punctuation variant)."""
    if "@" not in body:
        return []
    seen: dict[str, None] = {}
    for match in _CANDIDATE.finditer(body):
        name = match.group(1).lower()
        while name:
            seen[name] = None
            if name[-1] not in _TRAILING:
                break
            name = name[:-1]
    return list(seen)


# The members of a room by lowercase username, per process: a message with an `@` looks its
# names up here, not in the database. Joins and leaves reach every process (the user events
# of chat/actions/read_state.py) and drop the room's entry; a lost one is outlived by the TTL.
MEMBERS_TTL_SECONDS = 30.0
_members: dict[str, tuple[float, dict[str, tuple[int, str]]]] = {}


def members_cached(slug: str) -> dict[str, tuple[int, str]] | None:
    """Return the room's members by lowercase name if this process has them fresh, else None (no query)."""
    entry = _members.get(slug)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def members_load(*, room_id: int, slug: str) -> dict[str, tuple[int, str]]:
    """Read the room's members by lowercase name (one query) and keep them for MEMBERS_TTL_SECONDS."""
    rows = Membership.objects.filter(room_id=room_id).values_list("user_id", "user__username")
    members = {username.lower(): (user_id, username) for user_id, username in rows}
    _members[slug] = (time.monotonic() + MEMBERS_TTL_SECONDS, members)
    return members


def members_forget(slug: str) -> None:
    """Someone joined or left the room: its members are read afresh on the next mention."""
    _members.pop(slug, None)


def resolve(*, room_id: int, slug: str, body: str) -> str:
    """Return the stored form of whom the body mentions among the room's members ("" for no one)."""
    if not candidates(body):
        return ""
    members = members_cached(slug)
    return resolve_among(members if members is not None else members_load(room_id=room_id, slug=slug), body)


def resolve_among(members: dict[str, tuple[int, str]], body: str) -> str:
    """Whom the body mentions among these members (by lowercase name), in order of appearance, at most 50."""
    picked: dict[int, str] = {}
    for match in _CANDIDATE.finditer(body):  # the longest member name each candidate holds
        name = match.group(1).lower()
        while name and name not in members:
            name = name[:-1] if name[-1] in _TRAILING else ""
        if name:
            user_id, username = members[name]
            picked[user_id] = username
        if len(picked) >= MAX_MENTIONS:
            break
    return encode(list(picked.items()))


def encode(users: list[tuple[int, str]]) -> str:
    return "," + "".join(f"{user_id}:{username}," for user_id, username in users) if users else ""


def decode(stored: str) -> list[outbound.User]:
    """Return the user objects of a stored mentions column."""
    if not stored:
        return []
    users = []
    for part in stored.strip(",").split(","):
        user_id, _, username = part.partition(":")
        users.append(outbound.user_obj(user_id=int(user_id), username=username))
    return users


def ids(stored: str) -> list[int]:
    return [u["id"] for u in decode(stored)]


def needle(user_id: int) -> str:
    """What a stored mentions column holds when it mentions this user (a `contains` lookup: LIKE)."""
    return f",{user_id}:"
