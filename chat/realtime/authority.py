"""Sockets end when what let them in ends (protocol section 8), on every worker.

Each process indexes its open room sockets by user, by session and by token. An ending is
announced once to every process (chat/actions/authority.py publishes it to one
channel-layer group that each process's hub joins), and each process closes its own
sockets: nothing per socket reaches Redis, and the message path does no work for it. A
session-authenticated socket also re-checks its session when the session is due to
expire, so an expiry (which announces nothing) closes it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

from channels.db import database_sync_to_async
from django.utils import timezone

from chat import metrics
from chat.domain import auth, selectors
from chat.per_loop import PerLoop
from chat.protocol import codes
from chat.store import queries

log = logging.getLogger(__name__)

AUTHORITY_GROUP = "chat.authority"
EVENT_TYPE = "authority.end"
# A user's room state changed (protocol section 11: a cursor moved, a room joined or left);
# it travels on the same group, and each process hands it to that user's local sockets.
USER_EVENT = "user.state"
# A re-check is at most this far away, so a session's timer never sleeps past a changed expiry for long.
RECHECK_MAX_SECONDS = 3600.0


class Endable:
    """What the index needs of a socket: who it is, its room, a way to end it, and to tell it its user's state."""

    user_id: int | None
    room_slug: str | None  # None for a user socket

    async def end(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def user_state(self, kind: str, state: dict) -> None:
        """Take one of the user's room states (a `room_state` frame's fields); kind: read, joined or left."""
        raise NotImplementedError


class SocketIndex:
    """One per event loop: this process's room sockets by user, session digest and token id."""

    def __init__(self) -> None:
        self.by_user: dict[int, dict[Endable, None]] = {}
        self.by_session: dict[str, dict[Endable, None]] = {}
        self.by_token: dict[int, dict[Endable, None]] = {}
        self.by_room: dict[str, dict[Endable, None]] = {}
        self._keys: dict[Endable, tuple] = {}
        # One expiry re-check per session (by digest), however many of its sockets are open here.
        self._session_checks: dict[str, _SessionCheck] = {}

    def add(self, socket: Endable, *, identity: auth.Identity, room: str | None) -> None:
        """Index an open socket by what let it in; a session socket gets its expiry re-check."""
        digest = auth.session_digest(identity.session_key) if identity.session_key else None
        keys = (identity.user.pk, digest, identity.token_id, room)
        self._keys[socket] = keys
        for table, key in zip((self.by_user, self.by_session, self.by_token, self.by_room), keys, strict=True):
            if key is not None:
                table.setdefault(key, {})[socket] = None
        if digest is not None:
            self._schedule(digest, identity.session_key, identity.session_expires)

    def sockets(self) -> list[Endable]:
        """Every indexed socket of this process."""
        return list(self._keys)

    def remove(self, socket: Endable) -> None:
        keys = self._keys.pop(socket, None)
        if keys is None:
            return
        for table, key in zip((self.by_user, self.by_session, self.by_token, self.by_room), keys, strict=True):
            members = table.get(key)
            if members is not None:
                members.pop(socket, None)
                if not members:
                    del table[key]
        digest = keys[1]
        if digest is not None and digest not in self.by_session:  # its last socket here
            check = self._session_checks.pop(digest, None)
            if check is not None:
                check.timer.cancel()

    async def handle(self, event: dict) -> int:
        """Close the local sockets an ending covers; return how many."""
        kind = event.get("kind")
        if kind == "session":
            return await _end_all(self.by_session.get(event["session"], ()), codes.CLOSE_NOT_AUTHENTICATED,
                                  "signed out")
        if kind == "token":
            sockets = [s for token_id in event["tokens"] for s in self.by_token.get(token_id, ())]
            return await _end_all(sockets, codes.CLOSE_NOT_AUTHENTICATED, "token revoked")
        if kind == "user":
            return await _end_all(self.by_user.get(event["user"], ()), codes.CLOSE_NOT_AUTHENTICATED,
                                  "account disabled")
        if kind == "room":
            return await self._recheck_room(event["room"])
        log.warning("unknown authority event %r", kind)
        return 0

    async def _recheck_room(self, room: str) -> int:
        sockets = list(self.by_room.get(room, ()))
        if not sockets:
            return 0
        allowed = await database_sync_to_async(selectors.room_users_allowed)(
            slug=room, user_ids={s.user_id for s in sockets})
        if allowed is None:
            return await _end_all(sockets, codes.CLOSE_NOT_FOUND, "room deleted")
        return await _end_all([s for s in sockets if s.user_id not in allowed], codes.CLOSE_FORBIDDEN,
                              "no longer a member")

    def _schedule(self, digest: str, session_key: str, expires: datetime | None) -> None:
        """Re-check the session when it is due to expire (at most RECHECK_MAX_SECONDS away); keep the sooner check."""
        delay = RECHECK_MAX_SECONDS
        if expires is not None:
            delay = min(delay, max(0.0, (expires - timezone.now()).total_seconds()))
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._session_checks.get(digest)
        if current is not None:
            if current.due <= due:
                return
            current.timer.cancel()
        timer = loop.call_at(due, lambda: loop.create_task(self._recheck_session(digest, session_key)))
        self._session_checks[digest] = _SessionCheck(due, timer)

    async def _recheck_session(self, digest: str, session_key: str) -> None:
        self._session_checks.pop(digest, None)
        if digest not in self.by_session:
            return
        user_id = await database_sync_to_async(auth.session_user_id)(session_key=session_key)
        sockets = list(self.by_session.get(digest, ()))
        ending = [s for s in sockets if user_id is None or s.user_id != user_id]
        if ending:
            await _end_all(ending, codes.CLOSE_NOT_AUTHENTICATED, "session expired")
        if digest in self.by_session and digest not in self._session_checks:
            # Still valid (extended, or re-checked early): look again when it is next due.
            expires = await database_sync_to_async(queries.session_expiry)(session_key=session_key)
            if digest in self.by_session:
                self._schedule(digest, session_key, expires)


class _SessionCheck:
    """A session's next re-check: when (the loop's clock) and its timer."""

    __slots__ = ("due", "timer")

    def __init__(self, due: float, timer: asyncio.TimerHandle) -> None:
        self.due, self.timer = due, timer


async def _end_all(sockets: Iterable[Endable], code: int, reason: str) -> int:
    sockets = list(sockets)
    for socket in sockets:
        try:
            await socket.end(code, reason)
        except Exception:  # noqa: BLE001 - one socket's failure must not spare the others
            log.exception("ending a socket failed")
    if sockets:
        metrics.child(metrics.AUTHORITY_ENDED, str(code)).inc(len(sockets))
        log.info("authority ended %d socket(s): %s (close %s)", len(sockets), reason, code)
    return len(sockets)


_indexes = PerLoop(SocketIndex)


def get_socket_index() -> SocketIndex:
    """Return this event loop's socket index."""
    return _indexes.get()
