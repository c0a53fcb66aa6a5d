"""Presence changes, told to the room: a user's first socket joined, their last one left, a dead worker swept."""

from chat.presence.base import PresenceChange
from chat.protocol import outbound
from chat.realtime import broadcaster


async def presence_announce(*, room: str, change: PresenceChange, skip_user: int | None = None) -> None:
    """Broadcast a presence frame for a change; skip_user's own sockets learn the list from hello."""
    frame = outbound.presence(online=change.online, joined=change.joined, left=change.left)
    await broadcaster.room_broadcast(room=room, frame=frame, skip_user=skip_user)
