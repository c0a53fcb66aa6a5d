"""Presence shared by every worker through Redis, with per-worker heartbeats for crash cleanup.

Keys (prefix `chat:presence:`):
- `room:<room>:conns`  hash  "<worker>|<connection>" -> user id
- `room:<room>:count`  hash  user id -> open connections of that user in the room
- `room:<room>:users`  hash  user id -> user object (JSON), for the online list
- `worker:<worker>`    set   "<room>|<worker>|<connection>" this worker holds open
- `alive:<worker>`     string with a TTL, refreshed by the worker's heartbeat
- `workers`            set   of worker ids that may hold connections
- `user:<id>`          string: the user's open connections in all rooms (for the per-user cap)

Join and leave are Lua scripts, so they are atomic across workers: a user is in `joined`
only when their count goes 0 -> 1 and in `left` only when it goes 1 -> 0. Leaving an
already-removed connection changes nothing, so two survivors that sweep the same dead
worker cannot announce a departure twice.
"""

import asyncio
import json
import logging
import os
import uuid
import weakref

from django.conf import settings
from redis import asyncio as aioredis

from chat.presence.base import PresenceChange, PresenceStore
from chat.protocol.outbound import User

log = logging.getLogger(__name__)
PREFIX = "chat:presence:"

JOIN = """
local field = ARGV[1] .. '|' .. ARGV[2]
if redis.call('HEXISTS', KEYS[1], field) == 1 then return 0 end
local max = tonumber(ARGV[6])
if max > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= max then return -1 end
redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], field, ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5] .. '|' .. field)
redis.call('SADD', KEYS[5], ARGV[1])
if redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then return 1 end
return 0
"""

LEAVE = """
local field = ARGV[1] .. '|' .. ARGV[2]
redis.call('SREM', KEYS[4], ARGV[4] .. '|' .. field)
if redis.call('HDEL', KEYS[1], field) == 0 then return 0 end
if redis.call('DECR', KEYS[5]) <= 0 then redis.call('DEL', KEYS[5]) end
if redis.call('HINCRBY', KEYS[2], ARGV[3], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[3])
  return 1
end
return 0
"""


def _room_keys(room: str) -> list[str]:
    base = f"{PREFIX}room:{room}:"
    return [base + "conns", base + "count", base + "users"]


def _user_key(user_id: int | str) -> str:
    return f"{PREFIX}user:{user_id}"


def _worker_key(worker: str) -> str:
    return f"{PREFIX}worker:{worker}"


def _alive_key(worker: str) -> str:
    return f"{PREFIX}alive:{worker}"


WORKERS_KEY = PREFIX + "workers"


POOL_CONNECTIONS = 50
POOL_WAIT_SECONDS = 10.0


class RedisPresenceStore(PresenceStore):
    needs_heartbeat = True

    def __init__(self, url: str | None = None, *, worker_id: str | None = None, ttl: float | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self.worker_id = worker_id or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.ttl = ttl if ttl is not None else settings.CHAT_PRESENCE_TTL
        # One client per event loop: Django runs async_to_sync calls on loops of their own.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _redis(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A blocking pool: when a worker's sockets all close at once (a deploy), their leaves
            # wait for a connection instead of failing (redis-py's default pool raises past 100).
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS, decode_responses=True,
                health_check_interval=30)
            client = aioredis.Redis(connection_pool=pool)
            self._clients[loop] = client
        return client

    async def _online(self, client: aioredis.Redis, room: str) -> list[User]:
        users = [json.loads(raw) for raw in (await client.hvals(_room_keys(room)[2]))]
        return sorted(users, key=lambda u: (u["username"], u["id"]))

    async def join(self, *, room: str, user: User, connection: str, max_connections: int = 0) -> PresenceChange:
        client = self._redis()
        keys = [*_room_keys(room), _worker_key(self.worker_id), WORKERS_KEY, _user_key(user["id"])]
        args = [self.worker_id, connection, user["id"], json.dumps(user), room, max_connections]
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(_alive_key(self.worker_id), "1", px=int(self.ttl * 1000))
            pipe.eval(JOIN, len(keys), *keys, *args)
            pipe.hvals(keys[2])
            _, joined, raw_users = await pipe.execute()
        online = sorted((json.loads(raw) for raw in raw_users), key=lambda u: (u["username"], u["id"]))
        if joined == -1:
            return PresenceChange(online=online, refused=True)
        return PresenceChange(online=online, joined=[user] if joined == 1 else [])

    async def _leave(self, client, *, room: str, worker: str, user_id: int, connection: str) -> bool:
        keys = [*_room_keys(room), _worker_key(worker), _user_key(user_id)]
        return bool(await client.eval(LEAVE, len(keys), *keys, worker, connection, user_id, room))

    async def leave(self, *, room: str, user: User, connection: str) -> PresenceChange:
        client = self._redis()
        left = await self._leave(client, room=room, worker=self.worker_id, user_id=user["id"], connection=connection)
        return PresenceChange(online=await self._online(client, room), left=[user] if left else [])

    async def online(self, *, room: str) -> list[User]:
        return await self._online(self._redis(), room)

    async def online_counts(self, *, rooms: list[str]) -> dict[str, int]:
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.hlen(_room_keys(room)[1])
            counts = await pipe.execute()
        return dict(zip(rooms, counts, strict=True))

    async def heartbeat(self) -> list[tuple[str, PresenceChange]]:
        """Refresh this worker's liveness and sweep workers whose heartbeat expired."""
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(_alive_key(self.worker_id), "1", px=int(self.ttl * 1000))
            pipe.sadd(WORKERS_KEY, self.worker_id)
            pipe.smembers(WORKERS_KEY)
            _, _, workers = await pipe.execute()
        others = [w for w in workers if w != self.worker_id]
        if not others:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for worker in others:
                pipe.exists(_alive_key(worker))
            alive = await pipe.execute()
        changes: list[tuple[str, PresenceChange]] = []
        for worker, is_alive in zip(others, alive, strict=True):
            if not is_alive:
                changes += await self._sweep(client, worker)
        return changes

    async def _sweep(self, client: aioredis.Redis, worker: str) -> list[tuple[str, PresenceChange]]:
        """Remove every connection a dead worker held; return the rooms whose online list changed."""
        left: dict[str, list[User]] = {}
        for entry in await client.smembers(_worker_key(worker)):
            room, _worker, connection = entry.split("|", 2)
            conns_key, _count_key, users_key = _room_keys(room)
            user_id = await client.hget(conns_key, f"{worker}|{connection}")
            if user_id is None:
                await client.srem(_worker_key(worker), entry)
                continue
            raw_user = await client.hget(users_key, user_id)
            if await self._leave(client, room=room, worker=worker, user_id=int(user_id), connection=connection):
                left.setdefault(room, []).append(json.loads(raw_user) if raw_user else {"id": int(user_id)})
        # Forget the worker only once its set is empty: a sweep cut short is finished next time.
        if not await client.scard(_worker_key(worker)):
            await client.srem(WORKERS_KEY, worker)
        if left:
            log.info("presence: swept dead worker %s (%d rooms)", worker, len(left))
        return [(room, PresenceChange(online=await self._online(client, room), left=users)) for room, users in left.items()]
