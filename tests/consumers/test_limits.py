"""Abuse limits on the socket: message rate per user and room, open sockets per user."""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from chat import ratelimit
from chat.models import Message
from tests.consumers.conftest import socket_for
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "/ws/rooms/general/"


@pytest.fixture
def token(db):
    make_room("general")
    make_room("other")
    return make_token(make_user("alice"))


@override_settings(CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=0.001)
async def test_messages_over_the_burst_are_rate_limited_and_not_stored(token, open_socket):
    alice, _ = await open_socket(ROOM, bearer=token)
    for n in range(3):
        await alice.send({"type": "message", "body": f"m{n}", "client_id": f"c{n}"})
        await alice.recv_type("ack")
    await alice.send({"type": "message", "body": "one too many", "client_id": "c3"})
    frame = await alice.recv()
    while frame["type"] == "message":
        frame = await alice.recv()
    assert frame == {"type": "error", "code": "rate_limited", "detail": frame["detail"], "client_id": "c3"}
    # The bucket is per room: the same user can still talk elsewhere.
    elsewhere, _ = await open_socket("/ws/rooms/other/", bearer=token)
    await elsewhere.send({"type": "message", "body": "other room", "client_id": "o1"})
    assert (await elsewhere.recv_type("ack"))["seq"] == 1
    assert await sync_to_async(Message.objects.count)() == 4


@override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=0.001)
async def test_a_resent_client_id_is_answered_even_with_an_empty_bucket(token, open_socket):
    alice, _ = await open_socket(ROOM, bearer=token)
    acks = []
    for n in range(2):
        await alice.send({"type": "message", "body": f"m{n}", "client_id": f"c{n}"})
        acks.append(await alice.recv_type("ack"))
    # The bucket is empty now; a resend of c0 (say, after a reconnect) still gets c0's ack,
    # while a new message is refused.
    await alice.send({"type": "message", "body": "m0", "client_id": "c0"})
    await alice.send({"type": "message", "body": "new", "client_id": "c2"})
    replies = []
    while len(replies) < 2:  # broadcasts of m0, m1 may come in between
        frame = await alice.recv()
        if frame["type"] != "message":
            replies.append(frame)
    assert replies[0] == acks[0]
    assert replies[1]["type"] == "error" and replies[1]["code"] == "rate_limited" and replies[1]["client_id"] == "c2"
    assert await sync_to_async(Message.objects.count)() == 2


@override_settings(CHAT_MAX_CONNECTIONS_PER_USER=2)
async def test_sockets_over_the_per_user_cap_are_closed_4429(token, open_socket):
    first, _ = await open_socket(ROOM, bearer=token)
    await open_socket("/ws/rooms/other/", bearer=token)
    third = socket_for(ROOM, bearer=token)
    await third.connect()
    assert await third.closed_with() == 4429
    await first.close()
    _, hello = await open_socket(ROOM, bearer=token)  # a slot is free again
    assert hello["user"]["username"] == "alice"


class _RateLimiterDown:
    """A rate limiter whose store cannot be reached (its Redis restarting)."""

    async def take(self, key: str) -> bool:
        raise ConnectionError("Connection refused")


async def test_a_rate_limiter_outage_answers_unavailable_with_the_client_id_and_stores_nothing(token, open_socket):
    alice, _ = await open_socket(ROOM, bearer=token)
    ratelimit._limiter.cache_clear()
    original = ratelimit._limiter
    ratelimit._limiter = lambda path, kind: _RateLimiterDown()
    try:
        await alice.send({"type": "message", "body": "while redis is down", "client_id": "r1"})
        error = await alice.recv()
    finally:
        ratelimit._limiter = original
    # The client_id is named, so the client knows which message to send again.
    assert error == {"type": "error", "code": "unavailable", "detail": error["detail"], "client_id": "r1"}
    await alice.send({"type": "message", "body": "while redis is down", "client_id": "r1"})
    assert (await alice.recv_type("ack"))["seq"] == 1
    assert await sync_to_async(Message.objects.count)() == 1
