"""One contract suite for every presence backend (memory and Redis), plus the Redis crash sweep."""

import uuid

import pytest
from redis import asyncio as aioredis

from chat.presence.memory import MemoryPresenceStore
from chat.presence.redis import RedisPresenceStore

ALICE = {"id": 1, "username": "alice"}
BOB = {"id": 2, "username": "bob"}


@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """Return a factory of stores that share state like workers of one deployment do."""
    if request.param == "memory":
        store = MemoryPresenceStore()
        return lambda: store
    redis_url = request.getfixturevalue("redis_server").url
    return lambda: RedisPresenceStore(redis_url, ttl=5)


@pytest.fixture
def room():
    return f"room-{uuid.uuid4().hex[:8]}"


async def test_first_connection_joins_and_last_leaves(make_store, room):
    store = make_store()
    change = await store.join(room=room, user=ALICE, connection="a1")
    assert change.joined == [ALICE] and change.online == [ALICE]
    change = await store.join(room=room, user=ALICE, connection="a2")
    assert change.joined == [] and change.online == [ALICE] and not change.changed
    change = await store.leave(room=room, user=ALICE, connection="a1")
    assert change.left == [] and change.online == [ALICE]
    change = await store.leave(room=room, user=ALICE, connection="a2")
    assert change.left == [ALICE] and change.online == []


async def test_online_lists_distinct_users_sorted_and_counts_per_room(make_store, room):
    store = make_store()
    await store.join(room=room, user=BOB, connection="b1")
    await store.join(room=room, user=ALICE, connection="a1")
    await store.join(room=room, user=ALICE, connection="a2")
    await store.join(room=room + "-x", user=BOB, connection="b2")
    assert await store.online(room=room) == [ALICE, BOB]
    assert await store.online_counts(rooms=[room, room + "-x", room + "-empty"]) == {
        room: 2,
        room + "-x": 1,
        room + "-empty": 0,
    }


async def test_leaving_twice_or_an_unknown_connection_changes_nothing(make_store, room):
    store = make_store()
    await store.join(room=room, user=ALICE, connection="a1")
    await store.join(room=room, user=BOB, connection="b1")
    assert (await store.leave(room=room, user=BOB, connection="b1")).left == [BOB]
    again = await store.leave(room=room, user=BOB, connection="b1")
    assert again.left == [] and again.online == [ALICE]
    assert (await store.leave(room=room, user=ALICE, connection="nope")).left == []


async def test_joining_the_same_connection_twice_counts_once(make_store, room):
    store = make_store()
    await store.join(room=room, user=ALICE, connection="a1")
    await store.join(room=room, user=ALICE, connection="a1")
    assert (await store.leave(room=room, user=ALICE, connection="a1")).left == [ALICE]


async def test_workers_share_presence_through_redis(redis_server, room):
    worker_a = RedisPresenceStore(redis_server.url, ttl=5)
    worker_b = RedisPresenceStore(redis_server.url, ttl=5)
    assert (await worker_a.join(room=room, user=ALICE, connection="a1")).joined == [ALICE]
    # The same user on another worker is a second tab, not a second user.
    assert (await worker_b.join(room=room, user=ALICE, connection="a2")).joined == []
    assert (await worker_b.join(room=room, user=BOB, connection="b1")).online == [ALICE, BOB]
    assert (await worker_a.leave(room=room, user=ALICE, connection="a1")).left == []
    assert (await worker_b.leave(room=room, user=ALICE, connection="a2")).left == [ALICE]


async def test_survivor_sweeps_a_dead_worker_once(redis_server, room):
    dead = RedisPresenceStore(redis_server.url, ttl=5)
    survivor_1 = RedisPresenceStore(redis_server.url, ttl=5)
    survivor_2 = RedisPresenceStore(redis_server.url, ttl=5)
    await dead.join(room=room, user=ALICE, connection="a1")
    await dead.join(room=room, user=BOB, connection="b1")
    await survivor_1.join(room=room, user=BOB, connection="b2")
    assert await survivor_1.heartbeat() == []  # the dead worker is still within its TTL
    # Its heartbeat key expiring is what a kill -9 looks like from Redis.
    client = aioredis.Redis.from_url(redis_server.url)
    await client.delete(f"chat:presence:alive:{dead.worker_id}")
    await client.aclose()
    changes = await survivor_1.heartbeat()
    assert [(r, c.left, c.online) for r, c in changes] == [(room, [ALICE], [BOB])]
    assert await survivor_2.heartbeat() == []  # nothing left to announce
    assert await survivor_2.online(room=room) == [BOB]


async def test_connection_cap_counts_every_room_and_frees_on_leave(make_store, room):
    # Users of their own: the Redis server is shared by the whole session.
    ALICE = {"id": uuid.uuid4().int % 10**9, "username": "alice"}  # noqa: N806
    BOB = {"id": ALICE["id"] + 1, "username": "bob"}  # noqa: N806
    store = make_store()
    assert not (await store.join(room=room, user=ALICE, connection="c1", max_connections=2)).refused
    assert not (await store.join(room=room + "-b", user=ALICE, connection="c2", max_connections=2)).refused
    refused = await store.join(room=room, user=ALICE, connection="c3", max_connections=2)
    assert refused.refused and refused.joined == []
    assert not (await store.join(room=room, user=BOB, connection="b1", max_connections=2)).refused
    await store.leave(room=room, user=ALICE, connection="c1")
    assert not (await store.join(room=room, user=ALICE, connection="c3", max_connections=2)).refused
    await store.leave(room=room, user=ALICE, connection="c3")
    await store.leave(room=room + "-b", user=ALICE, connection="c2")


async def test_a_burst_of_hundreds_of_joins_and_leaves_at_once_all_succeed(make_store, room):
    # A deploy: a worker's sockets all close at once, and the survivor's all open at once.
    import asyncio

    store = make_store()
    users = [{"id": 1000 + i, "username": f"u{i:03d}"} for i in range(300)]
    joined = await asyncio.gather(*(store.join(room=room, user=u, connection=f"c{u['id']}") for u in users))
    assert sum(len(change.joined) for change in joined) == 300
    assert len(await store.online(room=room)) == 300
    left = await asyncio.gather(*(store.leave(room=room, user=u, connection=f"c{u['id']}") for u in users))
    assert sum(len(change.left) for change in left) == 300
    assert await store.online(room=room) == []
