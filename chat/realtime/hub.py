"""Local fan-out: each process subscribes once per room and writes each broadcast to its sockets.

Channels' default shape gives every socket its own channel-layer channel: a broadcast to a
room of N sockets becomes N queue puts, N dispatches (each with a thread hop to close old
DB connections) and N JSON-to-bytes encodes. Here a process holds one channel, joins a
room's group when its first local socket enters the room, and on each event walks its
local members, writing the already-encoded frame straight to each socket.
"""

import asyncio
import json
import logging
import time

from channels.layers import get_channel_layer

from chat import metrics
from chat.domain import mentions
from chat.per_loop import PerLoop
from chat.realtime.authority import AUTHORITY_GROUP, USER_EVENT, get_socket_index
from chat.realtime.authority import EVENT_TYPE as AUTHORITY_EVENT
from chat.realtime.broadcaster import room_group
from chat.realtime.wire import text_frame

log = logging.getLogger(__name__)

class Delivery:
    """One room event as every local socket writes it, encoded once per process.

    texts are the frames' JSON, payloads their UTF-8 bytes, and wire all of them as
    consecutive RFC 6455 text frames: one socket write for the whole event.
    """

    __slots__ = ("texts", "payloads", "wire")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.payloads = [text.encode() for text in texts]
        self.wire = b"".join(map(text_frame, self.payloads))


class Member:
    """What the hub needs from a socket: its user id and a way to write a delivery to it."""

    user_id: int | None  # None until the socket's credentials are checked

    def deliver(self, delivery: Delivery, skip_user: int | None = None) -> None:
        """Write a room event's frames.

        skip_user is the user the event is not for; the hub has already left out members
        with that user id, so only a member whose user is not yet known needs it.
        """
        raise NotImplementedError


class Watcher:
    """What the hub needs from a user socket: it hears a room's messages, not its presence or typing."""

    def room_messages(self, room: str, messages: list[tuple[dict, str, list[int] | None]]) -> None:
        """Take a room event's messages (new, edited or deleted) as (object, encoded text, mentioned before)."""
        raise NotImplementedError


class Hub:
    """One per event loop: the process's single channel, its rooms' local members and watchers.

    A room's group is joined while the process has a socket in the room (a member) or a
    user socket of someone who joined it (a watcher), and left when it has neither.
    """

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.rooms: dict[str, dict[Member, None]] = {}
        self.watchers: dict[str, dict[Watcher, None]] = {}
        self._subscribed: set[str] = set()
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task | None = None
        self._endings: set[asyncio.Task] = set()

    async def join(self, room: str, member: Member) -> None:
        """Add a socket to a room; subscribe the process to the room if it is its first."""
        await self._add(self.rooms, room, member)

    async def leave(self, room: str, member: Member) -> None:
        """Remove a socket; unsubscribe the process from the room when nothing local needs it."""
        await self._remove(self.rooms, room, member)

    async def watch(self, room: str, watcher: Watcher) -> None:
        """Let a user socket hear a room's messages."""
        await self._add(self.watchers, room, watcher)

    async def watch_many(self, rooms: list[str], watcher: Watcher) -> None:
        """Let a user socket hear several rooms; the missing subscriptions go out together (one wait, not one each)."""
        missing = [room for room in rooms if room not in self._subscribed]
        if missing:
            async with self._lock:
                await self._listen()
                missing = [room for room in missing if room not in self._subscribed]
                await asyncio.gather(*(self.layer.group_add(room_group(room), self.channel) for room in missing))
                self._subscribed.update(missing)
        for room in rooms:  # no await from the checks above to here: nothing unsubscribes in between
            self.watchers.setdefault(room, {})[watcher] = None

    async def unwatch(self, room: str, watcher: Watcher) -> None:
        await self._remove(self.watchers, room, watcher)

    async def listen(self) -> None:
        """Make sure the process hears its users' events, whether or not it is in any room."""
        if self.channel is None:
            async with self._lock:
                await self._listen()

    async def _listen(self) -> None:
        if self.channel is None:  # the lock is held
            self.channel = await self.layer.new_channel("chat.hub.")
            # Endings of authority (protocol section 8) and users' read state (section 11)
            # reach every process once, here.
            await self.layer.group_add(AUTHORITY_GROUP, self.channel)
            self._reader = asyncio.get_running_loop().create_task(self._read_forever(), name="chat-hub")

    async def _add(self, table: dict, room: str, member) -> None:
        if room in self._subscribed:
            # No await between the check and the insert, so no lock.
            table.setdefault(room, {})[member] = None
            return
        async with self._lock:
            if room not in self._subscribed:
                await self._listen()
                await self.layer.group_add(room_group(room), self.channel)
                self._subscribed.add(room)
            table.setdefault(room, {})[member] = None

    async def _remove(self, table: dict, room: str, member) -> None:
        members = table.get(room)
        if members is None or member not in members:
            return
        del members[member]
        if members:
            return  # others stay: nothing to unsubscribe, no lock
        del table[room]
        if room in self.rooms or room in self.watchers:
            return
        async with self._lock:
            if room in self.rooms or room in self.watchers or room not in self._subscribed:
                return
            # Marked first: a join during the discard takes the lock and subscribes again.
            self._subscribed.discard(room)
            await self.layer.group_discard(room_group(room), self.channel)

    def fan_out(self, event: dict) -> int:
        """Write an event's frames to every local member of its room but skip_user; return how many got it.

        A member whose deliver() raises is logged and skipped: the rest of the room still gets the event.
        """
        watchers = self.watchers.get(event["room"])
        if watchers and event.get("kind") == "message":
            self._tell_watchers(event["room"], watchers, event["texts"], event.get("mentioned_before"))
        members = self.rooms.get(event["room"])
        if not members:
            return 0
        delivery = Delivery(event["texts"])  # encoded once per process, not once per socket
        skip = event.get("skip_user")
        count = 0
        for member in list(members):
            # skip None skips no one, a member whose user is not yet known (user_id None) included.
            if skip is None or member.user_id != skip:
                try:
                    member.deliver(delivery, skip)
                except Exception:  # one broken socket must not cost the rest of the room the event
                    log.exception("delivery to a member failed room=%s", event["room"])
                    continue
                count += 1
        if count:
            metrics.frame_out(event.get("kind", "event"), count * len(event["texts"]))
            if "at" in event:
                metrics.DELIVERY_SECONDS.observe(time.time() - event["at"])
        return count

    def _tell_watchers(self, room: str, watchers: dict, texts: list[str], before: list | None = None) -> None:
        # Decoded once per process, not per watcher; a change carries whom it mentioned before.
        messages = [(json.loads(text), text, before[i] if before else None) for i, text in enumerate(texts)]
        for watcher in list(watchers):
            try:
                watcher.room_messages(room, messages)
            except Exception:  # one broken socket must not cost the others the event
                log.exception("telling a user socket failed room=%s", room)

    def tell_user(self, event: dict) -> int:
        """Hand a user's new room state to each of their local sockets (both kinds); return how many."""
        if event["kind"] != "read":
            mentions.members_forget(event["state"]["slug"])  # whom a mention can name has changed
        sockets = list(get_socket_index().by_user.get(event["user"], ()))
        for socket in sockets:
            try:
                socket.user_state(event["kind"], event["state"])
            except Exception:
                log.exception("telling a socket its user's state failed user=%s", event["user"])
        return len(sockets)

    async def _read_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
                if event.get("type") == AUTHORITY_EVENT:
                    # Its own task: a room re-check reads the database, and delivery must not wait.
                    self._endings.add(task := asyncio.get_running_loop().create_task(get_socket_index().handle(event)))
                    task.add_done_callback(self._endings.discard)
                elif event.get("type") == USER_EVENT:
                    self.tell_user(event)
                else:
                    self.fan_out(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A Redis hiccup must not end delivery for the whole process; clients
                # recover anything lost meanwhile by seq.
                log.exception("hub receive failed; retrying")
                await asyncio.sleep(0.5)


_hubs = PerLoop(Hub)


def get_hub() -> Hub:
    """Return this event loop's hub."""
    return _hubs.get()
