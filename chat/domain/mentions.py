"""Mentions (protocol section 12): `@username` of a member of the room, found on the server and stored.

A candidate starts after an `@` that does not follow a username character (so an e-mail
address is not a mention) and runs over username characters; trailing punctuation that a
username may hold (`.`, `+`, `-`, `@`) is tried off one character at a time, so "@bob."
and "@bob" both mention bob. Matching is case-insensitive and only members count. At most
MAX_MENTIONS users per message. A message stores them in one text column,
",<id>:<username>,...,", which the unread-mention count filters with LIKE '%,<id>:%' (needle()).
"""

import re

from django.db.models.functions import Lower

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


def resolve(*, room_id: int, body: str) -> str:
    """Return the stored form of whom the body mentions among the room's members ("" for no one)."""
    names = candidates(body)
    if not names:
        return ""
    found = dict(Membership.objects.filter(room_id=room_id).annotate(name=Lower("user__username"))
                 .filter(name__in=names).values_list("name", "user_id"))
    usernames = dict(Membership.objects.filter(room_id=room_id, user_id__in=found.values())
                     .values_list("user_id", "user__username"))
    picked: dict[int, None] = {}
    for match in _CANDIDATE.finditer(body):  # in order of appearance, the longest member name of each
        name = match.group(1).lower()
        while name and name not in found:
            name = name[:-1] if name[-1] in _TRAILING else ""
        if name:
            picked[found[name]] = None
        if len(picked) >= MAX_MENTIONS:
            break
    return encode([(user_id, usernames[user_id]) for user_id in picked])


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
