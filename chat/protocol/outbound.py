"""Build every frame the server sends (protocol section 4), and encode it once."""

import json
from datetime import datetime
from typing import Any

User = dict[str, Any]
Frame = dict[str, Any]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(frame: Frame) -> str:
    """Serialise a frame to the JSON text sent on the wire."""
    return _encoder.encode(frame)


PRESENCE_PREFIX = encode({"type": "presence"})[:-1]


def is_presence_text(text: str) -> bool:
    """Tell whether encoded frame text is a presence frame (its "type" is encoded first)."""
    return text.startswith(PRESENCE_PREFIX)


def iso(dt: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a Z suffix."""
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_obj(*, user_id: int, username: str) -> User:
    return {"id": user_id, "username": username}


def room_obj(*, slug: str, name: str, private: bool) -> Frame:
    return {"slug": slug, "name": name, "private": private}


def message_obj(
    *,
    message_id: int,
    seq: int,
    room: str,
    user: User,
    body: str,
    created: datetime,
    client_id: str | None,
    version: int,
    attachment: Frame | None = None,
    edited: datetime | None = None,
    deleted: bool = False,
    mentions: list[User] | None = None,
) -> Frame:
    return {
        "type": "message",
        "id": message_id,
        "seq": seq,
        "room": room,
        "user": user,
        "body": body,
        "created": iso(created),
        "client_id": client_id,
        "attachment": attachment,
        "edited": iso(edited) if edited is not None else None,
        "deleted": deleted,
        "version": version,
        "mentions": mentions or [],
    }


def hello(*, user: User, room: Frame, online: list[User], messages: list[Frame], last_seq: int, last_version: int,
          truncated: bool, last_read: int = 0) -> Frame:
    return {
        "type": "hello",
        "user": user,
        "room": room,
        "online": online,
        "messages": messages,
        "last_seq": last_seq,
        "last_version": last_version,
        "last_read": last_read,
        "truncated": truncated,
    }


def room_state(*, room, last_read: int, unread: int, mentions: int, last_message: Frame | None,
               last_activity: datetime | str, joined: bool = True, name: str | None = None) -> Frame:
    """A room's state for one user (protocol section 11): counts, cursor and newest message.

    The `room_state` frame is this object with its type first (room_state_frame).
    """
    return {
        "slug": room.slug,
        "name": room.name if name is None else name,  # a DM is named after the other user
        "private": room.private,
        "dm": room.dm,
        "joined": joined,
        "last_seq": room.last_seq,
        "last_version": room.last_version,
        "last_read": last_read,
        "unread": unread,
        "mentions": mentions,
        "last_activity": last_activity if isinstance(last_activity, str) else iso(last_activity),
        "last_message": last_message,
    }


def room_left(*, slug: str) -> Frame:
    """The state of a room the user no longer belongs to: left, or removed."""
    return {"slug": slug, "joined": False}


def room_state_frame(state: Frame) -> Frame:
    return {"type": "room_state", **state}


def user_hello(*, user: User, rooms: list[Frame]) -> Frame:
    return {"type": "user_hello", "user": user, "rooms": rooms}


def ack(*, client_id: str | None, message_id: int, seq: int) -> Frame:
    return {"type": "ack", "client_id": client_id, "id": message_id, "seq": seq}


def presence(*, online: list[User], joined: list[User], left: list[User]) -> Frame:
    return {"type": "presence", "online": online, "joined": joined, "left": left}


def typing(*, user: User, active: bool) -> Frame:
    return {"type": "typing", "user": user, "active": active}


def history(*, messages: list[Frame], has_more: bool) -> Frame:
    return {"type": "history", "messages": messages, "has_more": has_more}


def pong(*, ts: Any) -> Frame:
    return {"type": "pong", "ts": ts}


def error(*, code: str, detail: str, client_id: str | None = None) -> Frame:
    frame: Frame = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame
