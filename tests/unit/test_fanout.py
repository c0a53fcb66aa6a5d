"""The local fan-out hub and the pre-built wire frames it writes."""

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chat.protocol import outbound
from chat.realtime import broadcaster
from chat.realtime.hub import Hub
from chat.realtime.wire import text_frame


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

    def deliver(self, delivery, skip_user=None):
        assert delivery.payloads == [text.encode() for text in delivery.texts]
        assert delivery.wire == b"".join(text_frame(p) for p in delivery.payloads)
        self.frames.extend(delivery.texts)
        self.arrived.set()


async def test_hub_writes_each_broadcast_to_local_members_but_the_skipped_user():
    hub = Hub()
    alice, alice_tab, bob, elsewhere = Recorder(1), Recorder(1), Recorder(2), Recorder(3)
    for member in (alice, alice_tab, bob):
        await hub.join("hub-room", member)
    await hub.join("hub-other", elsewhere)
    await broadcaster.room_broadcast(room="hub-room", frame=outbound.pong(ts="all"))
    await broadcaster.room_broadcast(room="hub-room", frame=outbound.pong(ts="not alice"), skip_user=1)
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
    assert hub.fan_out({"room": "hub-leave", "texts": ["{}"], "skip_user": None}) == 0


async def test_a_batch_reaches_members_in_order_in_events_that_fit(monkeypatch):
    sent = []
    layer_send = Hub().layer.group_send

    async def counting(group, event):
        sent.append(len(event["texts"]))
        await layer_send(group, event)

    hub = Hub()
    member = Recorder(1)
    await hub.join("hub-batch", member)
    monkeypatch.setattr(broadcaster, "BATCH_EVENT_CHARS", 60)
    monkeypatch.setattr(hub.layer, "group_send", counting)
    frames = [outbound.pong(ts=f"n{i}") for i in range(7)]  # 24 characters each
    assert await broadcaster.rooms_broadcast_many({"hub-batch": frames})
    while len(member.frames) < 7:
        member.arrived.clear()
        await asyncio.wait_for(member.arrived.wait(), 5)
    assert member.frames == [outbound.encode(f) for f in frames]
    assert sent == [2, 2, 2, 1]
