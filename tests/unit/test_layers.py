"""The channel layers (chat/realtime/layers.py)."""

import asyncio
import time

from chat.realtime import layers
from chat.realtime.layers import LocalChannelLayer, RedisPubSubLayer


async def test_group_membership_outlives_group_expiry():
    layer = LocalChannelLayer(group_expiry=10)
    channel = await layer.new_channel("chat.hub.")
    await layer.group_add("chat.room.lobby", channel)
    # Joined long ago: Channels' in-memory layer would have dropped this membership.
    layer.groups["chat.room.lobby"][channel] -= 3600
    layer._swept_at = float("-inf")
    await layer.group_send("chat.room.lobby", {"type": "room.event", "text": "still here"})
    message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message["text"] == "still here"


async def test_expired_messages_are_still_swept():
    layer = LocalChannelLayer(expiry=60)
    await layer.send("chat.hub.a", {"type": "old"})
    await layer.send("chat.hub.a", {"type": "fresh"})
    queue = layer.channels["chat.hub.a"]
    expires, message = queue._queue[0]
    queue._queue[0] = (expires - 120, message)  # the first message outlived its expiry
    layer._swept_at = float("-inf")
    layer._clean_expired()
    assert (await asyncio.wait_for(layer.receive("chat.hub.a"), 5))["type"] == "fresh"


class Clock:
    """Stands in for the time module in chat.realtime.layers: the test sets monotonic(); time() is real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


class CountingChannels(dict):
    """A layer's channels that count the sweep's walks over them (nothing else calls items())."""

    walks = 0

    def items(self):
        self.walks += 1
        return super().items()


async def test_sweep_runs_at_most_once_per_interval(monkeypatch):
    clock = Clock()
    # The module's `time`, not time.monotonic itself: the event loop's clock must run on.
    monkeypatch.setattr(layers, "time", clock)
    layer = LocalChannelLayer(expiry=60)
    channels = layer.channels = CountingChannels()
    await layer.send("chat.hub.c", {"type": "old"})
    for _ in range(100):  # each group_send sweeps in Channels' layer
        await layer.group_send("chat.room.nobody", {"type": "x"})
    assert channels.walks == 1  # the first sweep only
    queue = channels["chat.hub.c"]
    expires, message = queue._queue[0]
    queue._queue[0] = (expires - 120, message)  # now expired, but the next sweep is not due
    clock.now += layer.sweep_interval * 0.99
    for _ in range(100):
        await layer.group_send("chat.room.nobody", {"type": "x"})
    assert channels.walks == 1 and queue.qsize() == 1
    clock.now += layer.sweep_interval * 0.02  # past the interval since the first sweep
    await layer.group_send("chat.room.nobody", {"type": "x"})
    assert channels.walks == 2 and "chat.hub.c" not in channels  # swept, once


async def test_redis_group_send_many_publishes_every_group_in_order_in_one_pipeline(redis_server, monkeypatch):
    layer = RedisPubSubLayer(hosts=[redis_server.url])
    try:
        channel = await layer.new_channel("chat.hub.")
        await layer.group_add("chat.room.a", channel)
        await layer.group_add("chat.room.b", channel)
        items = [("chat.room.a", {"type": "e", "n": 1}), ("chat.room.b", {"type": "e", "n": 2}),
                 ("chat.room.a", {"type": "e", "n": 3}), ("chat.room.nobody", {"type": "e", "n": 4})]
        shard = layer._get_layer()._shards[0]

        async def one_by_one(*args):
            raise AssertionError("published one by one, not in a pipeline")

        monkeypatch.setattr(shard, "publish", one_by_one)
        before = (await shard._redis.info("commandstats")).get("cmdstat_publish", {}).get("calls", 0)
        await layer.group_send_many(items)
        got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(3)]
        assert [m["n"] for m in got] == [1, 2, 3]
        after = (await shard._redis.info("commandstats"))["cmdstat_publish"]["calls"]
        assert after - before == 4  # each group's event published, the empty group's too
    finally:
        await layer.flush()
