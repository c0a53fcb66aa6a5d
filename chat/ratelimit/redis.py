"""Token buckets shared by every worker, on Redis's clock, with a worker's busy keys leased ahead.

Takes go through a per-loop batcher (chat.batching.Batcher): those made while a call is in
flight go together in the next, as one EVALSHA over their keys, one entry per key. All keys
go to one Redis: a Redis Cluster would need them in one hash slot.

Leases. A key taken again on the same worker while its last call's answer is fresh is busy
there (one user posting quickly to one room), so its next call asks for a few tokens more
than it needs, doubling each time up to a quarter of the burst (and LEASE_MAX). The worker
spends them without a Redis call, and whatever it has not spent LEASE_SECONDS after its
last call for the key goes back to the bucket (a timer at the first lease to end). A token is only ever spent once: taken from the bucket
by one script call, held by one worker, spent there or given back. So together the workers
never allow more than the bucket does; the cost is that, at the very edge of the limit, a
user's other socket on another worker can be refused while this worker still holds a token
for them, for at most LEASE_SECONDS (and the give-back's round trip).
"""

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from redis import asyncio as aioredis

from chat import metrics
from chat.batching import Batcher
from chat.per_loop import PerLoop
from chat.ratelimit.base import RateLimiter

log = logging.getLogger(__name__)

# How long a worker keeps tokens it took ahead and has not spent, after its last call for the key.
LEASE_SECONDS = 0.5
# The most tokens a worker takes ahead for one key (and at most a quarter of the burst).
LEASE_MAX = 32

# KEYS: bucket hashes, each once; ARGV: burst, rate, then per key how many tokens to take
# (at most; as many as the bucket holds) or, when negative, to give back. Returns per key
# the tokens taken (0 for a give-back).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl = math.ceil(burst / rate) + 1
local taken = {}
for i, key in ipairs(KEYS) do
  local want = tonumber(ARGV[i + 2])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, at = burst, now end
  tokens = math.min(burst, tokens + (now - at) * rate)
  taken[i] = 0
  if want > 0 then
    taken[i] = math.min(want, math.floor(tokens))
    tokens = tokens - taken[i]
  else
    tokens = math.min(burst, tokens - want)
  end
  redis.call('HSET', key, 'tokens', tokens, 'at', now)
  redis.call('EXPIRE', key, ttl)
end
return taken
"""


@dataclass(slots=True)
class _Lease:
    """What one worker holds of one key's bucket."""

    tokens: int = 0  # taken from the bucket ahead of need, not yet spent
    ahead: int = 0  # how many to take ahead on the next call (doubles while the key stays busy)
    until: float = 0.0  # loop time after which unspent tokens go back


class _Takes(Batcher[str, bool]):
    """One event loop's Redis client, its queue of takes and its leases."""

    max_batch = 500  # takes per script call: bounds how long one call holds Redis

    def __init__(self, limiter: "RedisRateLimiter") -> None:
        super().__init__()
        self.limiter = limiter
        self.script = aioredis.Redis.from_url(limiter.url).register_script(TAKE)
        self.leases: dict[str, _Lease] = {}
        self.waiting: Counter[str] = Counter()  # key -> takes queued for the next call
        self._sweep: asyncio.TimerHandle | None = None

    def take_leased(self, key: str) -> bool:
        """Spend a leased token for key now, if one is held and no earlier take of it waits."""
        lease = self.leases.get(key)
        if lease is None or not lease.tokens or key in self.waiting:
            return False
        lease.tokens -= 1
        return True

    def submit(self, item: str) -> asyncio.Future:
        self.waiting[item] += 1
        return super().submit(item)

    async def flush(self, keys: list[str]) -> list[bool]:
        counts = Counter(keys)
        self.waiting.subtract(counts)
        for key in counts:
            if not self.waiting[key]:
                del self.waiting[key]
        allowed = {key: self._spend_held(key, n) for key, n in counts.items()}
        wants = {key: n - allowed[key] for key, n in counts.items() if n > allowed[key]}
        if wants:
            await self._take(wants, allowed)
        out = []
        for key in keys:  # a key's first takes get its tokens, in the order they were made
            out.append(allowed[key] > 0)
            allowed[key] -= 1
        return out

    def _spend_held(self, key: str, n: int) -> int:
        lease = self.leases.get(key)
        if lease is None:
            return 0
        spent = min(n, lease.tokens)
        lease.tokens -= spent
        return spent

    async def _take(self, wants: dict[str, int], allowed: dict[str, int]) -> None:
        """Ask the buckets for what the takes need and, for busy keys, some more; fill allowed."""
        cap = min(LEASE_MAX, int(self.limiter.burst // 4))
        now = asyncio.get_running_loop().time()
        asks = []
        for key, need in wants.items():
            lease = self.leases.get(key)
            if lease is None:
                asks.append(need)
                continue
            # Asked from here within LEASE_SECONDS: busy, so take more ahead than last time.
            lease.ahead = min(cap, max(1, lease.ahead * 2)) if lease.until > now else 0
            asks.append(need + lease.ahead)
        with metrics.timed(metrics.child(metrics.REDIS_SECONDS, "rate_limit")):
            taken = await self.script(keys=list(wants), args=[self.limiter.burst, self.limiter.rate, *asks])
        until = asyncio.get_running_loop().time() + LEASE_SECONDS
        for (key, need), ask, got in zip(wants.items(), asks, taken, strict=True):
            got = int(got)
            allowed[key] += min(need, got)
            # A renewed lease goes last, so the dict stays in the order the leases end.
            lease = self.leases[key] = self.leases.pop(key, None) or _Lease()
            lease.tokens += max(0, got - need)
            lease.until = until
            if got < ask:
                lease.ahead = 0  # the bucket is running dry: hold nothing ahead of need
        self._sweep_later()

    def _sweep_later(self) -> None:
        if self._sweep is None and self.leases:
            first = next(iter(self.leases.values()))  # the lease that ends first
            self._sweep = asyncio.get_running_loop().call_at(first.until, self._sweep_now)

    def _sweep_now(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        back = self.expire(loop.time())
        if back:
            task = loop.create_task(self.give_back(back))
            task.add_done_callback(_log_failure)
        self._sweep_later()

    def expire(self, now: float) -> dict[str, int]:
        """Drop the leases that ended by now (not renewed for LEASE_SECONDS); return their unspent tokens by key.

        A take of the key waiting for its call then asks the bucket afresh: what was held goes back.
        """
        back = {}
        for key, lease in list(self.leases.items()):
            if lease.until > now:
                break  # the rest end later
            del self.leases[key]
            if lease.tokens:
                back[key] = lease.tokens
        return back

    async def give_back(self, tokens: dict[str, int]) -> None:
        """Return unspent tokens to their buckets (never beyond the burst)."""
        with metrics.timed(metrics.child(metrics.REDIS_SECONDS, "rate_limit_return")):
            await self.script(keys=list(tokens), args=[self.limiter.burst, self.limiter.rate,
                                                       *(-n for n in tokens.values())])


def _log_failure(task: asyncio.Task) -> None:
    # Tokens that did not go back are lost to their user until the bucket refills: a
    # stricter limit for a moment, never a looser one.
    if not task.cancelled() and task.exception() is not None:
        log.warning("returning leased rate-limit tokens failed: %r", task.exception())


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self._takes = PerLoop(lambda: _Takes(self))

    async def take(self, key: str) -> bool:
        takes = self._takes.get()
        key = f"chat:rate:{key}"
        return takes.take_leased(key) or await takes.submit(key)
