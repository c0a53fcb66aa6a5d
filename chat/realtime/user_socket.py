"""The user socket, /ws/user/ (protocol section 11): the state of every room the user joined, live.

One per tab. Its first frame, `user_hello`, holds a snapshot of each joined room's state;
then a `room_state` frame follows every change: a message, an edit or a deletion in one of
those rooms (heard from the room's own broadcast through the process's hub, and counted by
a RoomTally), the user's cursor moving, the user joining or leaving a room. It opens with
the room socket's credentials, Origin rule and close codes, and ends as room sockets do
when what let it in ends (section 8) or the worker stops (section 9).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from channels.db import database_sync_to_async
from django.conf import settings

from chat import metrics
from chat.domain import selectors
from chat.protocol import codes, inbound, outbound
from chat.protocol.errors import ChatError
from chat.realtime import handshake
from chat.realtime.authority import get_socket_index
from chat.realtime.hub import get_hub
from chat.realtime.lean import LeanConsumer
from chat.realtime.replies import error_frame
from chat.realtime.tally import APPLIED, RoomTally
from chat.realtime.wire import RAW_SEND_EXTENSION, text_frame
from chat.store.connection import read_reconnecting_once

log = logging.getLogger(__name__)

# How long a change may wait for the one before it before the room is read afresh.
GAP_WAIT_SECONDS = 1.0


class UserConsumer(LeanConsumer):
    """One tab's socket for everything that is not one room's timeline."""

    user_id: int | None = None
    room_slug = None  # not in any one room: room re-checks (section 8) pass it by
    _ready = False
    _opened: tuple[float, str | None, int] | None = None  # when user_hello went, how it authenticated, its rooms

    async def connect(self):
        self.tallies: dict[str, RoomTally] = {}
        self._early: list[tuple[str, dict]] | None = []  # the user's state events that came before user_hello
        self._early_messages: list[tuple[str, list]] | None = []  # room events that came before the snapshot
        self._outbox: deque[str] = deque()  # only for servers without the raw send
        self._drainer: asyncio.Task | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}  # refreshes due
        self._due: dict[str, asyncio.TimerHandle] = {}  # room_state writes due (CHAT_ROOM_STATE_INTERVAL)
        self._sent_at: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self._raw_send = self.scope.get("extensions", {}).get(RAW_SEND_EXTENSION)
        credentials = handshake.credentials_from_scope(self.scope)
        await self.accept()
        if not credentials:
            return await self._refuse(codes.CLOSE_NOT_AUTHENTICATED)
        identity, slugs = await database_sync_to_async(read_reconnecting_once)(
            selectors.user_socket_open, credentials=credentials)
        user = identity.user
        if not user.is_authenticated:
            return await self._refuse(codes.CLOSE_NOT_AUTHENTICATED)
        self.user, self.user_id = user, user.pk
        # Heard first, then read: a change committed in between arrives after the snapshot
        # holds it, and the tally drops it by version.
        get_socket_index().add(self, identity=identity, room=None)
        hub = get_hub()
        await hub.listen()
        self._watched = set(slugs)
        await hub.watch_many(slugs, self)
        if self.tallies is None:  # ended meanwhile (section 8): hear nothing more
            for slug in slugs:
                await hub.unwatch(slug, self)
            return
        states = await database_sync_to_async(selectors.room_states)(user=user)
        if self.tallies is None:
            return  # closed meanwhile
        for state in states:
            self.tallies[state["slug"]] = RoomTally(user_id=self.user_id, state=state)
        await self.send(text_data=outbound.encode(outbound.user_hello(
            user=outbound.user_obj(user_id=user.pk, username=user.get_username()), rooms=states)))
        # Rooms joined between the two reads are watched now (and read afresh: see _watch_new);
        # rooms left between them are not watched any longer.
        for slug in self.tallies.keys() - self._watched:
            self._spawn(self._watch_new(slug))
        for slug in self._watched - self.tallies.keys():
            self._spawn(self._unwatch(slug))
        self._ready = True
        early_messages, self._early_messages = self._early_messages, None
        for room, messages in early_messages:
            self.room_messages(room, messages)
        metrics.child(metrics.HANDSHAKES, "user_hello").inc()
        metrics.child(metrics.SOCKETS_OPEN, "user").inc()
        early, self._early = self._early, None
        for kind, state in early:
            self.user_state(kind, state)
        self._opened = (time.monotonic(), identity.how, len(states))
        log.debug("ws open user socket user=%s rooms=%d auth=%s", user.pk, len(states), identity.how)

    async def disconnect(self, code):
        await self._stop()
        if self._opened is not None:  # one line per socket, as the room socket's
            opened_at, how, rooms = self._opened
            client = self.scope.get("client") or ("-",)
            log.info("ws closed user socket client=%s user=%s rooms=%d auth=%s code=%s open=%.1fs", client[0],
                     self.user_id, rooms, how, code, time.monotonic() - opened_at)

    async def end(self, code: int, reason: str) -> None:
        """Close because what let this socket in has ended, or the worker stops."""
        await self._stop()
        log.info("ws end user socket user=%s code=%s: %s", self.user_id, code, reason)
        await self.close(code=code)

    async def _stop(self) -> None:
        if getattr(self, "tallies", None) is None:
            return
        if self._ready:
            metrics.child(metrics.SOCKETS_OPEN, "user").dec()
        self._ready = False
        self._early = self._early_messages = None
        get_socket_index().remove(self)
        for timer in (*self._timers.values(), *self._due.values()):
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        hub = get_hub()
        watched, self._watched, self.tallies = getattr(self, "_watched", set()), set(), None
        for slug in watched:
            await hub.unwatch(slug, self)

    # -- section 9: a draining worker ends every socket; this one has nothing to store -------

    def stop_storing(self) -> None:
        pass

    async def answered(self) -> None:
        pass

    # -- frames from the client --------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.tallies is None:
            return
        try:
            if bytes_data is not None:
                raise ChatError("bad_request", "the user socket takes no binary frames")
            frame = inbound.decode(text_data, inbound.USER_SOCKET_TYPES)
            metrics.frame_in(frame["type"])
            await self.send(text_data=outbound.encode(outbound.pong(ts=inbound.check_ping(frame))))
        except Exception as exc:  # noqa: BLE001 - every failure is an error frame, never a lost connection
            await self.send(text_data=outbound.encode(error_frame(exc, client_id=None, room=None)))

    # -- the rooms' messages, via the hub --------------------------------------------------

    def room_messages(self, room: str, messages: list[tuple[dict, str, list[int] | None]]) -> None:
        if self._early_messages is not None:
            # Before the snapshot is read: it may or may not hold these, so they are offered
            # to it after (each tally drops what it already holds, by version).
            self._early_messages.append((room, messages))
            return
        tally = self.tallies.get(room) if self.tallies is not None else None
        if tally is None:
            return
        changed = False
        for message, text, before in messages:
            changed |= tally.offer(message, text, before) == APPLIED
        if changed:
            self._write_state(tally)
        self._mind_gap(tally)

    # -- the user's own changes (a cursor, a join, a leave), via the hub ---------------------

    def user_state(self, kind: str, state: dict) -> None:
        if self._early is not None:
            self._early.append((kind, state))  # before user_hello: applied after it, in order
            return
        if self.tallies is None:
            return
        slug = state["slug"]
        tally = self.tallies.get(slug)
        if not state["joined"]:
            if tally is not None:
                del self.tallies[slug]
                if (due := self._due.pop(slug, None)) is not None:
                    due.cancel()  # nothing of the room follows its leave
                self._sent_at.pop(slug, None)
                self._spawn(self._unwatch(slug))
                self._write(outbound.encode(outbound.room_state_frame(state)))
            return
        if tally is None:
            self.tallies[slug] = tally = RoomTally(user_id=self.user_id, state=state)
            tally.frozen = True  # until the room is heard: then a fresh read closes the window
            self._write(tally.frame_text())
            self._spawn(self._watch_new(slug))
        elif tally.adopt(state):
            self._write_state(tally)
        else:
            self._refresh_soon(slug, at_once=True)

    # -- keeping the tallies exact -----------------------------------------------------

    def _mind_gap(self, tally: RoomTally) -> None:
        if tally.gap:
            self._refresh_soon(tally.slug)
        elif tally.slug in self._timers and not tally.pending:
            self._timers.pop(tally.slug).cancel()

    def _refresh_soon(self, slug: str, *, at_once: bool = False) -> None:
        if at_once:
            if (timer := self._timers.pop(slug, None)) is not None:
                timer.cancel()
            self._spawn(self._refresh(slug))
        elif slug not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[slug] = loop.call_later(GAP_WAIT_SECONDS, lambda: self._spawn(self._refresh(slug)))

    async def _refresh(self, slug: str) -> None:
        """Read the room's state afresh; events that come meanwhile wait, then apply on top of it."""
        self._timers.pop(slug, None)
        tally = self.tallies.get(slug) if self.tallies is not None else None
        if tally is None:
            return
        tally.frozen = True
        metrics.USER_SOCKET_REFRESHES.inc()
        state = await database_sync_to_async(selectors.room_state_by_slug)(user=self.user, slug=slug)
        if self.tallies is None or self.tallies.get(slug) is not tally:
            return
        if state is None:  # left meanwhile; its leave event says so
            return
        tally.adopt(state)
        self._write_state(tally)
        self._mind_gap(tally)

    async def _watch_new(self, slug: str) -> None:
        if self.tallies is None:
            return
        if slug not in self._watched:
            self._watched.add(slug)
            await get_hub().watch(slug, self)
        await self._refresh(slug)

    async def _unwatch(self, slug: str) -> None:
        if self.tallies is not None and slug in self._watched:
            self._watched.discard(slug)
            await get_hub().unwatch(slug, self)

    # -- helpers -------------------------------------------------------------------

    def _write_state(self, tally: RoomTally) -> None:
        """Write a room's state now, or on the trailing edge of its interval: never more often, never stale."""
        slug = tally.slug
        if slug in self._due:
            return  # a write is already due; it sends the state as it is then
        now = asyncio.get_running_loop().time()
        wait = self._sent_at.get(slug, float("-inf")) + settings.CHAT_ROOM_STATE_INTERVAL - now
        if wait <= 0:
            self._sent_at[slug] = now
            self._write(tally.frame_text())
        else:
            self._due[slug] = asyncio.get_running_loop().call_later(wait, self._write_due, slug)

    def _write_due(self, slug: str) -> None:
        self._due.pop(slug, None)
        tally = self.tallies.get(slug) if self.tallies is not None else None
        if tally is not None:
            self._sent_at[slug] = asyncio.get_running_loop().time()
            self._write(tally.frame_text())

    def _write(self, text: str) -> None:
        if self._raw_send is not None:
            payload = text.encode()
            self._raw_send([payload], text_frame(payload))
        else:
            # Servers without our Daphne extension (the test communicator): ASGI send, in
            # order, from one task.
            self._outbox.append(text)
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.ensure_future(self._drain_outbox())
        metrics.frame_out("room_state")

    async def _drain_outbox(self) -> None:
        while self._outbox:
            await self.send(text_data=self._outbox.popleft())

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, code: int) -> None:
        self.tallies = None
        metrics.child(metrics.HANDSHAKES, str(code)).inc()
        await self.close(code=code)
