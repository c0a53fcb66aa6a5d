"""Presence for a single process: plain dictionaries, nothing shared."""

from chat.events import User
from chat.presence.base import PresenceChange, PresenceStore


class MemoryPresenceStore(PresenceStore):
    def __init__(self) -> None:
        # room -> user id -> (user object, open connection names)
        self._rooms: dict[str, dict[int, tuple[User, set[str]]]] = {}

    def _online(self, room: str) -> list[User]:
        users = self._rooms.get(room, {})
        return sorted((user for user, _ in users.values()), key=lambda u: (u["username"], u["id"]))

    async def join(self, *, room: str, user: User, connection: str) -> PresenceChange:
        users = self._rooms.setdefault(room, {})
        entry = users.get(user["id"])
        first = entry is None
        if first:
            entry = users[user["id"]] = (user, set())
        entry[1].add(connection)
        return PresenceChange(online=self._online(room), joined=[user] if first else [])

    async def leave(self, *, room: str, user: User, connection: str) -> PresenceChange:
        users = self._rooms.get(room, {})
        entry = users.get(user["id"])
        if entry is None or connection not in entry[1]:
            return PresenceChange(online=self._online(room))
        entry[1].discard(connection)
        last = not entry[1]
        if last:
            del users[user["id"]]
            if not users:
                self._rooms.pop(room, None)
        return PresenceChange(online=self._online(room), left=[user] if last else [])

    async def online(self, *, room: str) -> list[User]:
        return self._online(room)
