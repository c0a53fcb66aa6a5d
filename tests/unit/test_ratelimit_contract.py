"""One contract suite for the memory and Redis token buckets."""

import asyncio
import uuid

import pytest
import redis.exceptions
from django.test import override_settings

from chat.ratelimit.memory import MemoryRateLimiter
from chat.ratelimit.redis import RedisRateLimiter
from tests.support.server import free_port


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


@override_settings(CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=0.001)
async def test_redis_takes_made_together_share_one_call_and_keep_their_order(redis_server):
    limiter = RedisRateLimiter(redis_server.url)
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    await limiter.take("warm-up " + key)  # the loop's client and script exist from here on
    calls = []
    takes = limiter._takes.get()
    script = takes.script

    async def counted(*args, **kwargs):
        calls.append(kwargs["keys"])
        return await script(*args, **kwargs)

    takes.script = counted
    # Made in one turn of the loop: one script call, and the bucket counts them in order.
    results = await asyncio.gather(*[limiter.take(k) for k in [key] * 5 + [other]])
    assert results == [True, True, True, False, False, True]
    assert calls == [[f"chat:rate:{k}" for k in [key] * 5 + [other]]]
    assert not await limiter.take(key)  # the bucket state is in Redis, not in the batch
    assert len(calls) == 2


async def test_a_failed_redis_call_fails_each_take_of_its_batch():
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    results = await asyncio.gather(limiter.take("a"), limiter.take("b"), return_exceptions=True)
    assert isinstance(results[0], redis.exceptions.ConnectionError)
    assert results[1] is results[0]  # one call for both
