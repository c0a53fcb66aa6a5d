"""One contract suite for the memory and Redis token buckets."""

import asyncio
import uuid

import pytest
import redis.asyncio
import redis.exceptions
from django.test import override_settings

from chat.ratelimit import redis as redis_limiter
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
    calls = counted_calls(limiter)
    # Made in one turn of the loop: one script call, one entry per key, and the bucket's
    # tokens go to the first takes made.
    results = await asyncio.gather(*[limiter.take(k) for k in [key] * 5 + [other]])
    assert results == [True, True, True, False, False, True]
    assert calls == [({f"chat:rate:{key}": 5, f"chat:rate:{other}": 1})]
    assert not await limiter.take(key)  # the bucket state is in Redis, not in the batch
    assert len(calls) == 2


def counted_calls(limiter: RedisRateLimiter) -> list[dict[str, int]]:
    """Record each script call of the running loop's batcher as {key: tokens asked (negative: given back)}."""
    calls = []
    takes = limiter._takes.get()
    script = takes.script

    async def counted(*args, **kwargs):
        calls.append(dict(zip(kwargs["keys"], kwargs["args"][2:], strict=True)))
        return await script(*args, **kwargs)

    takes.script = counted
    return calls


async def bucket_tokens(redis_server, key: str) -> float:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        return float(await client.hget(f"chat:rate:{key}", "tokens"))
    finally:
        await client.aclose()


@override_settings(CHAT_RATE_BURST=1000, CHAT_RATE_PER_SECOND=0.001)
async def test_a_busy_key_is_served_from_tokens_taken_ahead(redis_server):
    limiter = RedisRateLimiter(redis_server.url)
    key = uuid.uuid4().hex
    calls = counted_calls(limiter)
    assert all([await limiter.take(key) for _ in range(40)])
    # Asked for 1, then 1 + 1, 1 + 2, 1 + 4, ...: each call takes twice as many ahead, up to
    # LEASE_MAX (a quarter of this burst is more).
    wants = [call[f"chat:rate:{key}"] for call in calls]
    assert wants == [1 + ahead for ahead in [0, 1, 2, 4, 8, 16, 32]]
    held = limiter._takes.get().leases[f"chat:rate:{key}"].tokens
    assert held == sum(wants) - 40
    # Every token is in one place: the bucket, the lease, or spent.
    assert await bucket_tokens(redis_server, key) == pytest.approx(1000 - 40 - held, abs=0.1)


@override_settings(CHAT_RATE_BURST=12, CHAT_RATE_PER_SECOND=0.001)
async def test_two_workers_on_one_bucket_never_allow_more_than_it_holds_and_unspent_tokens_go_back(redis_server):
    one, two = RedisRateLimiter(redis_server.url), RedisRateLimiter(redis_server.url)  # one loop each, as workers
    key = uuid.uuid4().hex
    # One user posting quickly from a socket on each: the first worker holds a token ahead
    # when the second finds the bucket empty.
    pattern = [one] * 5 + [two] * 8
    allowed = 0
    for limiter in pattern:
        allowed += await limiter.take(key)
        for other in (one, two):  # never more than a quarter of the burst held ahead
            lease = other._takes.get().leases.get(f"chat:rate:{key}")
            assert lease is None or lease.tokens <= 3
    held = {limiter: limiter._takes.get().leases[f"chat:rate:{key}"].tokens for limiter in (one, two)}
    assert allowed + sum(held.values()) == 12 and allowed < 12
    # Their leases end: the unspent tokens go back, and the other worker can spend them.
    for limiter in (one, two):
        takes = limiter._takes.get()
        back = takes.expire(asyncio.get_running_loop().time() + 1)
        assert back == ({f"chat:rate:{key}": held[limiter]} if held[limiter] else {})
        if back:
            await takes.give_back(back)
    later = [await two.take(key) for _ in range(12 - allowed + 2)]
    assert later == [True] * (12 - allowed) + [False] * 2


@override_settings(CHAT_RATE_BURST=100, CHAT_RATE_PER_SECOND=0.001)
async def test_a_lease_left_unused_goes_back_by_itself(redis_server, monkeypatch):
    monkeypatch.setattr(redis_limiter, "LEASE_SECONDS", 0.05)
    limiter = RedisRateLimiter(redis_server.url)
    key = uuid.uuid4().hex
    assert all([await limiter.take(key) for _ in range(2)])  # asks 1, then 2: one token held
    takes = limiter._takes.get()
    given = asyncio.Event()
    give_back = takes.give_back

    async def recorded(tokens):
        await give_back(tokens)
        given.set()

    takes.give_back = recorded
    async with asyncio.timeout(5):
        await given.wait()
    assert takes.leases == {}
    assert await bucket_tokens(redis_server, key) == pytest.approx(100 - 2, abs=0.1)


@override_settings(CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=0.001)
async def test_a_small_burst_is_never_leased(redis_server):
    limiter = RedisRateLimiter(redis_server.url)
    key = uuid.uuid4().hex
    calls = counted_calls(limiter)
    assert [await limiter.take(key) for _ in range(4)] == [True] * 3 + [False]
    assert [call[f"chat:rate:{key}"] for call in calls] == [1, 1, 1, 1]  # a quarter of 3 is no token


async def test_a_failed_redis_call_fails_each_take_of_its_batch():
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    results = await asyncio.gather(limiter.take("a"), limiter.take("b"), return_exceptions=True)
    assert isinstance(results[0], redis.exceptions.ConnectionError)
    assert results[1] is results[0]  # one call for both


@override_settings(CHAT_RATE_BURST=100, CHAT_RATE_PER_SECOND=0.001)
async def test_leases_end_in_the_order_they_were_last_renewed(redis_server):
    limiter = RedisRateLimiter(redis_server.url)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    for key in (first, second, first):  # first renewed last
        await limiter.take(key)
        await limiter.take(key)  # a call taking one ahead: each lease holds a token
    takes = limiter._takes.get()
    leases = {key: takes.leases[f"chat:rate:{key}"] for key in (first, second)}
    assert list(takes.leases) == [f"chat:rate:{second}", f"chat:rate:{first}"]
    assert takes.expire(leases[second].until - 0.001) == {}
    assert takes.expire(leases[second].until) == {f"chat:rate:{second}": leases[second].tokens}
    assert list(takes.leases) == [f"chat:rate:{first}"]
