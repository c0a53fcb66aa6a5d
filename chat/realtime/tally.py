"""One user's state of one room, kept exact from the room's own events (protocol section 11).

A user socket holds a RoomTally per joined room. Every change to a room's messages takes
the room's next version (gapless, commit order), so the tally can apply the room's
broadcasts in version order and know it has seen each change exactly once: a new message
by someone else above the cursor adds one unread, deleting one of those takes it back.
Nothing is guessed: a change that arrives early waits for the ones before it, and when
the tally cannot line an event up (a lost broadcast, a snapshot older than what it has
applied) it asks for a fresh snapshot from the database instead (the socket's refresh).
So a message costs each watching socket this arithmetic and one small frame, not a query.
"""

from __future__ import annotations

import json

from chat.protocol import outbound

APPLIED, WAITING, STALE = "applied", "waiting", "stale"


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RoomTally:
    """A room's state for one user: cursor, exact counts and newest message."""

    __slots__ = ("slug", "user_id", "head", "last_seq", "last_version", "last_read", "unread", "mentions",
                 "last_message", "last_activity", "pending", "frozen")

    def __init__(self, *, user_id: int, state: outbound.Frame) -> None:
        self.user_id = user_id
        self.slug = state["slug"]
        self.pending: dict[int, tuple[dict, str]] = {}  # version -> (message, its text), waiting for a gap to fill
        self.frozen = False  # a refresh is under way: events wait in pending until its snapshot lands
        self.last_version = -1
        self._take(state)

    def _take(self, state: outbound.Frame) -> None:
        head = {k: state[k] for k in ("slug", "name", "private", "dm", "joined")}
        self.head = _json(head)[1:-1]  # encoded once: the part of every frame that never changes
        self.last_seq = state["last_seq"]
        self.last_version = state["last_version"]
        self.last_read = state["last_read"]
        self.unread = state["unread"]
        self.mentions = state["mentions"]
        message = state["last_message"]
        self.last_message = "null" if message is None else outbound.encode(message)
        self.last_activity = state["last_activity"]

    # -- events ------------------------------------------------------------------------

    def offer(self, message: dict, text: str) -> str:
        """Take a message the room broadcast (new, edited or deleted); return APPLIED, WAITING or STALE."""
        version = message["version"]
        if version <= self.last_version:
            return STALE  # already counted (by a snapshot or an earlier copy)
        if self.frozen or version != self.last_version + 1:
            self.pending[version] = (message, text)
            return WAITING
        self._apply(message, text)
        self._drain()
        return APPLIED

    def _apply(self, message: dict, text: str) -> None:
        seq = message["seq"]
        counts = message["user"]["id"] != self.user_id and seq > self.last_read
        mentioned = any(u["id"] == self.user_id for u in message.get("mentions") or ())
        if seq > self.last_seq:  # new: its seq and its version are both the room's next
            self.last_seq = seq
            self.last_message, self.last_activity = text, message["created"]
            if counts and not message["deleted"]:
                self.unread += 1
                self.mentions += mentioned
        else:  # a change to a message already counted (a deleted one never changes again)
            if counts and message["deleted"]:
                self.unread -= 1
            if seq == self.last_seq:
                self.last_message = text
        self.last_version = message["version"]

    def _drain(self) -> None:
        while (nxt := self.pending.pop(self.last_version + 1, None)) is not None:
            self._apply(*nxt)
        for version in [v for v in self.pending if v <= self.last_version]:
            del self.pending[version]

    @property
    def gap(self) -> bool:
        """True while a change waits for an earlier one that has not come (a refresh is due if it lasts)."""
        return bool(self.pending) and not self.frozen

    # -- snapshots ---------------------------------------------------------------------

    def adopt(self, state: outbound.Frame) -> bool:
        """Take a snapshot (a cursor move, a join, a refresh); return False if it is older than what was applied.

        A snapshot that is behind the events already applied cannot be merged exactly (it
        misses them; they miss its cursor), so the caller refreshes instead.
        """
        if state["last_version"] < self.last_version and not self.frozen:
            return False
        self._take(state)
        self.frozen = False
        self._drain()
        return True

    # -- the frame ---------------------------------------------------------------------

    def frame_text(self) -> str:
        """The `room_state` frame, encoded: the fixed head once, the numbers and the newest message's text as they are."""
        return (f'{{"type":"room_state",{self.head},"last_seq":{self.last_seq},"last_version":{self.last_version},'
                f'"last_read":{self.last_read},"unread":{self.unread},"mentions":{self.mentions},'
                f'"last_activity":{_json(self.last_activity)},"last_message":{self.last_message}}}')
