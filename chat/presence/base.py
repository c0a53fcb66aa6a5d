"""The presence store interface that every backend implements."""

from dataclasses import dataclass, field

from chat.protocol.outbound import User


@dataclass
class PresenceChange:
    """The result of a join or leave: the room's online users now, and who changed."""

    online: list[User]
    joined: list[User] = field(default_factory=list)
    left: list[User] = field(default_factory=list)
    # join only: the user already holds max_connections sockets, so nothing was recorded.
    refused: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


class PresenceStore:
    """Track open connections per room and user; a user is online while any connection is.

    Methods that child classes must implement: join, leave, online.
    """

    # Backends shared between workers set this: the worker then runs heartbeat() on a timer.
    needs_heartbeat = False

    async def join(self, *, room: str, user: User, connection: str, max_connections: int = 0) -> PresenceChange:
        """Record an open connection; the user is in `joined` if it is their first in the room.

        With max_connections > 0, a user who already holds that many sockets (in any room)
        is refused and nothing is recorded.
        """
        raise NotImplementedError

    async def leave(self, *, room: str, user: User, connection: str) -> PresenceChange:
        """Forget a connection; the user is in `left` if it was their last in the room."""
        raise NotImplementedError

    async def online(self, *, room: str) -> list[User]:
        """List the distinct users online in the room, by username."""
        raise NotImplementedError

    async def online_counts(self, *, rooms: list[str]) -> dict[str, int]:
        """Count the distinct online users of each room."""
        return {room: len(await self.online(room=room)) for room in rooms}

    async def heartbeat(self) -> list[tuple[str, PresenceChange]]:
        """Keep this worker's connections alive and reap dead workers'; return the rooms that changed."""
        return []
