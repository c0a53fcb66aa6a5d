"""One contract suite for the memory and Redis token buckets."""

import uuid

import pytest
from django.test import override_settings

from chat.ratelimit.memory import MemoryRateLimiter
from chat.ratelimit.redis import RedisRateLimiter


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(params=["memory", "redis"])
def limiter(request):
    if request.param == "memory":
        return MemoryRateLimiter()
    return RedisRateLimiter(request.getfixturevalue("redis_server").url)


@override_settings(CHAT_RATE_BURST=5, CHAT_RATE_PER_SECOND=0.001)
async def test_burst_is_allowed_then_refused_per_key(limiter):
    key = uuid.uuid4().hex
    assert [await limiter.take(key) for _ in range(7)] == [True] * 5 + [False] * 2
    assert await limiter.take(key + "-other")


@override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=5)
async def test_memory_bucket_refills_at_the_rate():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    assert [await limiter.take("k") for _ in range(3)] == [True, True, False]
    clock.now += 0.2  # one token at 5 per second
    assert [await limiter.take("k") for _ in range(2)] == [True, False]
    clock.now += 100  # refills only up to the burst
    assert [await limiter.take("k") for _ in range(3)] == [True, True, False]
