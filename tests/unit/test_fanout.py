"""The local fan-out hub and the pre-built wire frames it writes."""

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chat import broadcast, events
from chat.fanout import Hub, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_parses_as_one_final_text_frame(size):
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
        raise AssertionError("the frame was incomplete")
    except StopIteration as done:
        frame = done.value
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data == payload


class Recorder:
    def __init__(self, user_id):
        self.user_id = user_id
        self.frames: list[str] = []
        self.arrived = asyncio.Event()

    def deliver(self, text, payload, frame, skip_user=None):
        assert payload == text.encode() and frame.endswith(payload)
        self.frames.append(text)
        self.arrived.set()


async def test_hub_writes_each_broadcast_to_local_members_but_the_skipped_user():
    hub = Hub()
    alice, alice_tab, bob, elsewhere = Recorder(1), Recorder(1), Recorder(2), Recorder(3)
    for member in (alice, alice_tab, bob):
        await hub.join("hub-room", member)
    await hub.join("hub-other", elsewhere)
    await broadcast.room_broadcast(room="hub-room", frame=events.pong(ts="all"))
    await broadcast.room_broadcast(room="hub-room", frame=events.pong(ts="not alice"), skip_user=1)
    await asyncio.wait_for(bob.arrived.wait(), 5)
    while len(bob.frames) < 2:
        bob.arrived.clear()
        await asyncio.wait_for(bob.arrived.wait(), 5)
    assert bob.frames == ['{"type":"pong","ts":"all"}', '{"type":"pong","ts":"not alice"}']
    assert alice.frames == alice_tab.frames == ['{"type":"pong","ts":"all"}']
    assert elsewhere.frames == []


async def test_hub_unsubscribes_a_room_when_its_last_member_leaves():
    hub = Hub()
    first, second = Recorder(1), Recorder(2)
    await hub.join("hub-leave", first)
    await hub.join("hub-leave", second)
    await hub.leave("hub-leave", first)
    assert list(hub.rooms["hub-leave"]) == [second]
    await hub.leave("hub-leave", second)
    await hub.leave("hub-leave", second)  # twice is harmless
    assert "hub-leave" not in hub.rooms
    assert hub.fan_out({"room": "hub-leave", "text": "{}", "skip_user": None}) == 0
