"""The one way out to a room: encode a frame once and send it to the room's group."""

import logging

from channels.layers import get_channel_layer

from chat import events

log = logging.getLogger(__name__)

EVENT_TYPE = "room.event"


def room_group(room: str) -> str:
    """Name the channel-layer group of a room (slugs are valid group-name characters)."""
    return f"chat.room.{room}"


async def room_broadcast(*, room: str, frame: events.Frame, skip_user: int | None = None) -> bool:
    """Send a frame to every connection in the room (but skip_user's); call it after commit.

    The frame is encoded here, once per broadcast, and every receiving connection writes
    the same text. A channel-layer failure is logged, not raised: the message is already
    stored, and clients recover it by seq.
    """
    event = {"type": EVENT_TYPE, "room": room, "text": events.encode(frame), "skip_user": skip_user}
    try:
        await get_channel_layer().group_send(room_group(room), event)
    except Exception:
        log.exception("broadcast to room %s failed", room)
        return False
    return True
