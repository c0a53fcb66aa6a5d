"""Frames a socket holds back: back-pressure on its reading, and room events that come before hello.

A socket with PIPELINE_MAX messages awaiting their answer stops reading frames. Room events
that reach a socket before its hello wait in a backlog, flushed after hello without the
events meant to skip its user and without presence frames older than its presence join.
"""

import asyncio

import pytest
from django.test import override_settings

from chat.protocol import outbound
from chat.realtime.consumer import RoomConsumer
from chat.realtime.hub import Hub
from chat.realtime.replies import PIPELINE_MAX
from chat.store.writer import MessageWriter
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "/ws/rooms/general/"


@pytest.fixture
def users(db):
    make_room("general")
    return {name: make_user(name) for name in ("alice", "bob")}


@pytest.fixture
def people(users):
    return {name: make_token(user) for name, user in users.items()}


async def until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@override_settings(CHAT_RATE_BURST=100)
async def test_a_socket_with_pipeline_max_messages_in_flight_stops_reading_until_answers_go_out(
        people, open_socket, monkeypatch):
    gate = asyncio.Event()  # the database "commits" once the test sets it
    submitted, pinged = [], []
    flush, submit, frame_ping = MessageWriter.flush, MessageWriter.submit, RoomConsumer.frame_ping

    async def gated_flush(self, drafts):
        await gate.wait()
        return await flush(self, drafts)

    def counted_submit(self, draft):
        submitted.append(draft.client_id)
        return submit(self, draft)

    async def counted_ping(self, frame):
        pinged.append(frame["ts"])
        await frame_ping(self, frame)

    monkeypatch.setattr(MessageWriter, "flush", gated_flush)
    monkeypatch.setattr(MessageWriter, "submit", counted_submit)
    monkeypatch.setattr(RoomConsumer, "frame_ping", counted_ping)
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    try:
        for i in range(PIPELINE_MAX + 1):
            await alice.send({"type": "message", "body": f"m{i}", "client_id": f"k{i}"})
        await alice.send({"type": "ping", "ts": "alice"})
        await until(lambda: len(submitted) >= PIPELINE_MAX)
        # Other sockets read on (the loop is not stuck): bob's ping is answered meanwhile.
        await bob.send({"type": "ping", "ts": "bob"})
        assert await bob.recv_type("pong") == {"type": "pong", "ts": "bob"}
        # Alice's socket stopped reading: the last message and the ping wait unread.
        assert submitted == [f"k{i}" for i in range(PIPELINE_MAX)]
        assert pinged == ["bob"]
        frames = []
        while not await alice.comm.receive_nothing(timeout=0.1):
            frames.append(await alice.recv())
        assert [f for f in frames if f["type"] != "presence"] == []  # bob's join only: no ack, no pong
    finally:
        gate.set()
    replies = []
    while len(replies) < PIPELINE_MAX + 2:
        frame = await alice.recv()
        if frame["type"] not in ("message", "presence"):  # the room's broadcasts, bob's join
            replies.append(frame)
    # Every ack, then the pong, in the order their frames came.
    assert [(f["type"], f.get("client_id")) for f in replies] == [
        ("ack", f"k{i}") for i in range(PIPELINE_MAX + 1)
    ] + [("pong", None)]
    assert replies[-1]["ts"] == "alice"
    assert submitted == [f"k{i}" for i in range(PIPELINE_MAX + 1)] and pinged == ["bob", "alice"]


@pytest.mark.parametrize("held", ["skips_the_user", "presence_before_the_join"])
async def test_the_backlog_drops_events_skipping_the_user_and_presence_older_than_the_join(
        held, users, people, open_socket, monkeypatch):
    alice, bob = (outbound.user_obj(user_id=u.pk, username=u.username) for u in (users["alice"], users["bob"]))
    if held == "skips_the_user":
        # Alice's own typing, from another of her sockets: the hub cannot skip her yet (it
        # knows no user before the credentials are checked), so the backlog must.
        event = {"texts": [outbound.encode(outbound.typing(user=alice, active=True))], "skip_user": alice["id"]}
    else:
        # Older than alice's presence join: hello's `online` already says what it says.
        event = {"texts": [outbound.encode(outbound.presence(online=[bob], joined=[bob], left=[]))], "skip_user": None}
    kept = outbound.encode(outbound.typing(user=bob, active=True))
    join, injected = Hub.join, []

    async def join_then_events(self, room, member):
        await join(self, room, member)
        if not injected:  # the socket is in the hub, before its credentials and its hello
            injected.append(room)
            assert self.fan_out({"room": room, **event}) == 1
            assert self.fan_out({"room": room, "texts": [kept], "skip_user": None}) == 1

    monkeypatch.setattr(Hub, "join", join_then_events)
    sock, hello = await open_socket(ROOM, bearer=people["alice"])
    assert injected == ["general"] and hello["user"] == alice
    # The backlog goes out in order after hello: had the held event been kept, it came first.
    assert await sock.recv() == {"type": "typing", "user": bob, "active": True}
    await sock.send({"type": "ping", "ts": "end"})
    assert await sock.recv() == {"type": "pong", "ts": "end"}
