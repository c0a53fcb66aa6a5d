"""Presence for a single process: plain dictionaries, nothing shared."""

from chat.presence.base import PresenceChange, PresenceStore
from chat.protocol.outbound import User


class MemoryPresenceStore(PresenceStore):
    def __init__(self) -> None:
        # room -> user id -> (user object, open connection names)
        self._rooms: dict[str, dict[int, tuple[User, set[str]]]] = {}
        self._per_user: dict[int, int] = {}  # user id -> open connections in all rooms

    def _online(self, room: str) -> list[User]:
        users = self._rooms.get(room, {})
        return sorted((user for user, _ in users.values()), key=lambda u: (u["username"], u["id"]))

    async def join(self, *, room: str, user: User, connection: str, max_connections: int = 0) -> PresenceChange:
        users = self._rooms.setdefault(room, {})
        entry = users.get(user["id"])
        if entry is not None and connection in entry[1]:
            return PresenceChange(online=self._online(room))
        if max_connections and self._per_user.get(user["id"], 0) >= max_connections:
            if not users:
                del self._rooms[room]
            return PresenceChange(online=self._online(room), refused=True)
        first = entry is None
        if first:
            entry = users[user["id"]] = (user, set())
        entry[1].add(connection)
        self._per_user[user["id"]] = self._per_user.get(user["id"], 0) + 1
        return PresenceChange(online=self._online(room), joined=[user] if first else [])

    async def leave(self, *, room: str, user: User, connection: str) -> PresenceChange:
        users = self._rooms.get(room, {})
        entry = users.get(user["id"])
        if entry is None or connection not in entry[1]:
            return PresenceChange(online=self._online(room))
        entry[1].discard(connection)
        remaining = self._per_user.get(user["id"], 1) - 1
        if remaining > 0:
            self._per_user[user["id"]] = remaining
        else:
            self._per_user.pop(user["id"], None)
        last = not entry[1]
        if last:
            del users[user["id"]]
            if not users:
                self._rooms.pop(room, None)
        return PresenceChange(online=self._online(room), left=[user] if last else [])

    async def online(self, *, room: str) -> list[User]:
        return self._online(room)
