"""The one way out to a room: encode each frame once and send it to the room's group."""

import logging
import time

from channels.layers import get_channel_layer

from chat.protocol import outbound

log = logging.getLogger(__name__)

EVENT_TYPE = "room.event"
# Text per channel-layer event when a batch of messages is broadcast: the layers' spec caps
# a message at about 1 MB, and a frame is at most ~16 KB of text (4,000 chars, escapes).
BATCH_EVENT_CHARS = 256 * 1024


def room_group(room: str) -> str:
    """Name the channel-layer group of a room (slugs are valid group-name characters)."""
    return f"chat.room.{room}"


async def room_broadcast(*, room: str, frame: outbound.Frame, skip_user: int | None = None,
                         mentioned_before: list[int] | None = None) -> bool:
    """Send a frame to every connection in the room (but skip_user's); call it after commit.

    The frame is encoded here, once per broadcast, and every receiving connection writes
    the same text. A channel-layer failure is logged, not raised: the message is already
    stored, and clients recover it by seq. For an edit or a deletion, mentioned_before
    (whom the message mentioned until now) rides along for the user sockets, not the wire.
    """
    event = _event(room, [outbound.encode(frame)], skip_user, kind=frame["type"])
    if mentioned_before is not None:
        event["mentioned_before"] = [mentioned_before]
    return await _send(room, event)


async def rooms_broadcast_many(frames_by_room: dict[str, list[outbound.Frame]]) -> bool:
    """Send each room's frames to every connection in it, in order, in as few events as fit.

    Each process then writes a socket's share of one event with one system call, and all
    the rooms' events go in one channel-layer call (one round trip on Redis).
    """
    items = []
    committed = time.time()  # the hub observes delivery latency from here
    for room, frames in frames_by_room.items():
        texts: list[str] = []
        size = 0
        for text in map(outbound.encode, frames):
            if texts and size + len(text) > BATCH_EVENT_CHARS:
                items.append((room_group(room), _event(room, texts, kind="message", at=committed)))
                texts, size = [], 0
            texts.append(text)
            size += len(text)
        if texts:
            items.append((room_group(room), _event(room, texts, kind="message", at=committed)))
    layer = get_channel_layer()
    try:
        if hasattr(layer, "group_send_many"):
            await layer.group_send_many(items)
        else:  # a layer of Channels' own
            for group, event in items:
                await layer.group_send(group, event)
    except Exception:
        log.exception("broadcast to rooms %s failed", ", ".join(frames_by_room))
        return False
    return True


def _event(room: str, texts: list[str], skip_user: int | None = None, *, kind: str, at: float | None = None) -> dict:
    event = {"type": EVENT_TYPE, "room": room, "texts": texts, "skip_user": skip_user, "kind": kind}
    if at is not None:
        event["at"] = at
    return event


async def _send(room: str, event: dict) -> bool:
    try:
        await get_channel_layer().group_send(room_group(room), event)
    except Exception:
        log.exception("broadcast to room %s failed", room)
        return False
    return True
