"""The local fan-out hub and the pre-built wire frames it writes."""

import asyncio
import logging

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chat.protocol import outbound
from chat.realtime import broadcaster
from chat.realtime.hub import Delivery, Hub
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
    """A member that keeps what the hub hands it; tests check it afterwards, never inside deliver.

    An assert in deliver would raise inside the hub's reader, which logs it and reads on: the
    test would only see a timeout.
    """

    def __init__(self, user_id):
        self.user_id = user_id
        self.deliveries: list[tuple[Delivery, int | None]] = []
        self.arrived = asyncio.Event()

    def deliver(self, delivery, skip_user=None):
        self.deliveries.append((delivery, skip_user))
        self.arrived.set()

    @property
    def frames(self) -> list[str]:
        return [text for delivery, _ in self.deliveries for text in delivery.texts]

    async def wait_for(self, count: int) -> None:
        """Wait until count frames arrived (5 s at most)."""
        async with asyncio.timeout(5):
            while len(self.frames) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def assert_wire_matches_texts(self) -> None:
        for delivery, _ in self.deliveries:
            assert delivery.payloads == [text.encode() for text in delivery.texts]
            assert delivery.wire == b"".join(text_frame(p) for p in delivery.payloads)


class Broken:
    """A member whose socket fails on every write."""

    user_id = 99

    def __init__(self):
        self.calls = 0

    def deliver(self, delivery, skip_user=None):
        self.calls += 1
        raise RuntimeError("socket gone")


async def test_hub_writes_each_broadcast_to_local_members_but_the_skipped_user():
    hub = Hub()
    alice, alice_tab, bob, elsewhere = Recorder(1), Recorder(1), Recorder(2), Recorder(3)
    for member in (alice, alice_tab, bob):
        await hub.join("hub-room", member)
    await hub.join("hub-other", elsewhere)
    await broadcaster.room_broadcast(room="hub-room", frame=outbound.pong(ts="all"))
    await broadcaster.room_broadcast(room="hub-room", frame=outbound.pong(ts="not alice"), skip_user=1)
    await bob.wait_for(2)
    assert bob.frames == ['{"type":"pong","ts":"all"}', '{"type":"pong","ts":"not alice"}']
    assert alice.frames == alice_tab.frames == ['{"type":"pong","ts":"all"}']
    assert elsewhere.frames == []
    for member in (alice, alice_tab, bob):
        member.assert_wire_matches_texts()


async def test_a_member_whose_user_is_not_known_yet_gets_every_event_with_its_skip_user():
    hub = Hub()
    handshaking = Recorder(None)  # a socket in the hub before its credentials are checked
    await hub.join("hub-unknown", handshaking)
    assert hub.fan_out({"room": "hub-unknown", "texts": ['{"n":1}'], "skip_user": None}) == 1
    assert hub.fan_out({"room": "hub-unknown", "texts": ['{"n":2}'], "skip_user": 7}) == 1
    assert [(d.texts, skip) for d, skip in handshaking.deliveries] == [(['{"n":1}'], None), (['{"n":2}'], 7)]


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
    await member.wait_for(7)
    assert member.frames == [outbound.encode(f) for f in frames]
    member.assert_wire_matches_texts()
    assert sent == [2, 2, 2, 1]


async def test_a_member_that_raises_does_not_stop_delivery_to_the_rest_of_the_room(caplog):
    hub = Hub()
    first, broken, last = Recorder(1), Broken(), Recorder(2)
    for member in (first, broken, last):  # the broken one in the middle: the walk must go on past it
        await hub.join("hub-broken", member)
    event = {"room": "hub-broken", "texts": ['{"type":"pong","ts":"a"}'], "skip_user": None}
    with caplog.at_level(logging.ERROR, logger="chat.realtime.hub"):
        assert hub.fan_out(event) == 2
    assert first.frames == last.frames == ['{"type":"pong","ts":"a"}'] and broken.calls == 1
    [record] = [r for r in caplog.records if r.name == "chat.realtime.hub"]
    assert "room=hub-broken" in record.getMessage() and record.exc_info[0] is RuntimeError
    # Through the channel layer and the hub's reader, as broadcasts come: the room still hears.
    await broadcaster.room_broadcast(room="hub-broken", frame=outbound.pong(ts="b"))
    await last.wait_for(2)
    assert first.frames == last.frames == ['{"type":"pong","ts":"a"}', '{"type":"pong","ts":"b"}']
    assert broken.calls == 2


class Watching:
    """A user socket as the hub sees it: it hears messages, and records them."""

    def __init__(self):
        self.heard = []

    def room_messages(self, room, messages):
        self.heard.append((room, [(m["seq"], before) for m, _text, before in messages]))


async def test_a_room_stays_subscribed_while_a_member_or_a_watcher_needs_it(monkeypatch):
    hub = Hub()
    calls = []
    add, discard = hub.layer.group_add, hub.layer.group_discard

    async def counted_add(group, channel):
        calls.append(("add", group))
        return await add(group, channel)

    async def counted_discard(group, channel):
        calls.append(("discard", group))
        return await discard(group, channel)

    monkeypatch.setattr(hub.layer, "group_add", counted_add)
    monkeypatch.setattr(hub.layer, "group_discard", counted_discard)
    member, watcher = Recorder(1), Watching()
    await hub.join("hub-both", member)
    await hub.watch_many(["hub-both", "hub-only-watched"], watcher)
    message = '{"type":"message","seq":1,"version":1}'
    assert hub.fan_out({"room": "hub-both", "texts": [message], "kind": "message"}) == 1
    hub.fan_out({"room": "hub-both", "texts": ['{"type":"typing"}'], "kind": "typing"})  # not for watchers
    hub.fan_out({"room": "hub-only-watched", "texts": [message], "kind": "message", "mentioned_before": [[4]]})
    assert watcher.heard == [("hub-both", [(1, None)]), ("hub-only-watched", [(1, [4])])]
    await hub.leave("hub-both", member)
    assert ("discard", "chat.room.hub-both") not in calls  # the watcher still needs it
    await hub.unwatch("hub-both", watcher)
    await hub.unwatch("hub-only-watched", watcher)
    rooms = [(kind, group) for kind, group in calls if group.startswith("chat.room.")]
    assert sorted(rooms) == [("add", "chat.room.hub-both"), ("add", "chat.room.hub-only-watched"),
                             ("discard", "chat.room.hub-both"), ("discard", "chat.room.hub-only-watched")]
