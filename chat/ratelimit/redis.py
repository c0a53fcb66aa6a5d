"""Token buckets shared by every worker, on Redis's clock, with the takes of a moment in one script call.

Takes go through a per-loop batcher (chat.batching.Batcher): those made while a call is in
flight go together in the next, as one EVALSHA over all their keys. The script handles the keys in order, so two
takes on one key in a batch see each other, exactly as two calls would. All keys go to
one Redis: a Redis Cluster would need them in one hash slot.
"""

from django.conf import settings
from redis import asyncio as aioredis

from chat import metrics
from chat.batching import Batcher
from chat.per_loop import PerLoop
from chat.ratelimit.base import RateLimiter

# KEYS: bucket hashes; ARGV: burst, rate. Returns 1 (allowed) or 0 per key, in order.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl = math.ceil(burst / rate) + 1
local allowed = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, at = burst, now end
  tokens = math.min(burst, tokens + (now - at) * rate)
  allowed[i] = 0
  if tokens >= 1 then tokens = tokens - 1; allowed[i] = 1 end
  redis.call('HSET', key, 'tokens', tokens, 'at', now)
  redis.call('EXPIRE', key, ttl)
end
return allowed
"""


class _Takes(Batcher[str, bool]):
    """One event loop's Redis client and its queue of takes."""

    max_batch = 500  # keys per script call: bounds how long one call holds Redis

    def __init__(self, limiter: "RedisRateLimiter") -> None:
        super().__init__()
        self.limiter = limiter
        self.script = aioredis.Redis.from_url(limiter.url).register_script(TAKE)

    async def flush(self, keys: list[str]) -> list[bool]:
        with metrics.timed(metrics.child(metrics.REDIS_SECONDS, "rate_limit")):
            allowed = await self.script(keys=keys, args=[self.limiter.burst, self.limiter.rate])
        return [bool(a) for a in allowed]


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self._takes = PerLoop(lambda: _Takes(self))

    async def take(self, key: str) -> bool:
        return await self._takes.get().submit(f"chat:rate:{key}")
