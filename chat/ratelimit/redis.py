"""Token buckets shared by every worker: one Lua script call per event, Redis's clock."""

import asyncio
import weakref

from django.conf import settings
from redis import asyncio as aioredis

from chat.ratelimit.base import RateLimiter

# KEYS[1] bucket hash; ARGV burst, rate. Time comes from Redis so workers' clocks don't matter.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return allowed
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self._scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _script(self):
        loop = asyncio.get_running_loop()
        script = self._scripts.get(loop)
        if script is None:
            client = aioredis.Redis.from_url(self.url)
            script = self._scripts[loop] = client.register_script(TAKE)
        return script

    async def take(self, key: str) -> bool:
        return bool(await self._script()(keys=[f"chat:rate:{key}"], args=[self.burst, self.rate]))
