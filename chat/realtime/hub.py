"""Local fan-out: each process subscribes once per room and writes each broadcast to its sockets.

Channels' default shape gives every socket its own channel-layer channel: a broadcast to a
room of N sockets becomes N queue puts, N dispatches (each with a thread hop to close old
DB connections) and N JSON-to-bytes encodes. Here a process holds one channel, joins a
room's group when its first local socket enters the room, and on each event walks its
local members, writing the already-encoded frame straight to each socket.
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer

from chat import metrics
from chat.per_loop import PerLoop
from chat.realtime.authority import AUTHORITY_GROUP, get_socket_index
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


class Hub:
    """One per event loop: the process's single channel and its rooms' local members."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.rooms: dict[str, dict[Member, None]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task | None = None
        self._endings: set[asyncio.Task] = set()

    async def join(self, room: str, member: Member) -> None:
        """Add a socket to a room; subscribe the process to the room if it is its first."""
        members = self.rooms.get(room)
        if members is not None:
            # Already subscribed: no await between the check and the insert, so no lock.
            members[member] = None
            return
        async with self._lock:
            members = self.rooms.get(room)
            if members is None:
                if self.channel is None:
                    self.channel = await self.layer.new_channel("chat.hub.")
                    # Endings of authority (protocol section 8) reach every process once, here.
                    await self.layer.group_add(AUTHORITY_GROUP, self.channel)
                    self._reader = asyncio.get_running_loop().create_task(self._read_forever(), name="chat-hub")
                await self.layer.group_add(room_group(room), self.channel)
                members = self.rooms[room] = {}
            members[member] = None

    async def leave(self, room: str, member: Member) -> None:
        """Remove a socket; unsubscribe the process from the room when its last socket left."""
        members = self.rooms.get(room)
        if members is None or member not in members:
            return
        if len(members) > 1:
            del members[member]  # others stay: nothing to unsubscribe, no lock
            return
        async with self._lock:
            members = self.rooms.get(room)
            if members is None or member not in members:
                return
            del members[member]
            if not members:
                del self.rooms[room]
                await self.layer.group_discard(room_group(room), self.channel)

    def fan_out(self, event: dict) -> int:
        """Write an event's frames to every local member of its room but skip_user; return how many got it.

        A member whose deliver() raises is logged and skipped: the rest of the room still gets the event.
        """
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

    async def _read_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
                if event.get("type") == AUTHORITY_EVENT:
                    # Its own task: a room re-check reads the database, and delivery must not wait.
                    self._endings.add(task := asyncio.get_running_loop().create_task(get_socket_index().handle(event)))
                    task.add_done_callback(self._endings.discard)
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
