"""Typing: a stateless relay to the room's other users (the socket throttles what it relays)."""

from chat.protocol import outbound
from chat.realtime import broadcaster


async def typing_relay(*, room: str, user: outbound.User, active: bool) -> None:
    """Tell the room's other users that this user started or stopped typing."""
    await broadcaster.room_broadcast(room=room, frame=outbound.typing(user=user, active=active), skip_user=user["id"])
