"""Token buckets for a single process."""

import time

from chat.ratelimit.base import RateLimiter


class MemoryRateLimiter(RateLimiter):
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    async def take(self, key: str) -> bool:
        now = self.clock()
        burst, rate = self.burst, self.rate
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:  # forget full buckets now and then: they equal no entry
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * rate < burst}
        return True
