"""Channel layers: one process with no Redis (Channels' in-memory layer, made cheap to sweep),
and channels_redis's pub/sub layer with a batched group_send.

Both add group_send_many(items): the events of several groups sent together, in order per
group. The writer broadcasts a committed batch with it, which on Redis is one pipelined
round trip for all the batch's rooms instead of one PUBLISH round trip per room.

InMemoryChannelLayer sweeps every channel and every group membership on each send,
group_send and receive. With one hub channel per process and one group per room
(chat/fanout.py), that is O(rooms) per message: ~10% of the server's CPU at 100 rooms
(py-spy, bench 100x10). It also ends a group membership after `group_expiry` (a day),
which exists for consumers that die without leaving; the hub leaves its groups
explicitly and never dies alone, so a room open for a day would silently stop hearing
its own broadcasts.
"""

import time

from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from chat import metrics


class LocalChannelLayer(InMemoryChannelLayer):
    """In-memory layer: expired messages swept at most once a second, group memberships kept."""

    sweep_interval = 1.0

    async def group_send_many(self, items: list[tuple[str, dict]]) -> None:
        """Send each (group, message) in order."""
        for group, message in items:
            await self.group_send(group, message)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at < self.sweep_interval:
            return
        self._swept_at = now
        # The parent's channel sweep, without its group expiry.
        for channel, queue in list(self.channels.items()):
            while not queue.empty() and queue._queue[0][0] < time.time():
                queue.get_nowait()
                self._remove_from_groups(channel)
                if queue.empty():
                    self.channels.pop(channel, None)


class RedisPubSubLayer(RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer; group_send_many publishes on each shard in one pipeline.

    It uses the layer's own naming, sharding, serializer and per-shard connection and lock
    (channels-redis is pinned, 4.3.0), so what it publishes is exactly what group_send
    would, in the same order.
    """

    async def group_send_many(self, items: list[tuple[str, dict]]) -> None:
        """Send each (group, message), in order per shard: one round trip per shard."""
        layer = self._get_layer()
        by_shard: dict = {}
        for group, message in items:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, self.serialize(message)))
        with metrics.timed(metrics.child(metrics.REDIS_SECONDS, "publish")):
            await self._publish(by_shard)

    @staticmethod
    async def _publish(by_shard: dict) -> None:
        for shard, published in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, data in published:
                        pipe.publish(channel, data)
                    await pipe.execute()
