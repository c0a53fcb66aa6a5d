"""Our Daphne pieces (chatproject/daphne_server.py): the socket input queue and the shared options."""

import asyncio
from collections import deque

import pytest
from autobahn.websocket.protocol import TrafficStats
from daphne.ws_protocol import WebSocketFactory

from chatproject.daphne_adapter import ChatWebSocketProtocol, InputQueue, configured_protocol, deflate_acceptor


async def test_input_queue_hands_events_over_in_order_whether_or_not_receive_waits():
    queue = InputQueue()
    queue.put_nowait({"n": 1})
    queue.put_nowait({"n": 2})
    assert [await queue.get(), await queue.get()] == [{"n": 1}, {"n": 2}]
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # let the receive start waiting
    queue.put_nowait({"n": 3})
    queue.put_nowait({"n": 4})
    assert await asyncio.wait_for(waiting, 5) == {"n": 3}
    assert await queue.get() == {"n": 4}
    assert queue._items is None  # the deque exists only while events wait


async def test_input_queue_keeps_an_event_that_arrived_as_the_receive_was_cancelled():
    queue = InputQueue()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait({"n": 1})  # resolves the waiter...
    waiting.cancel()  # ...but the task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put_nowait({"n": 2})
    assert [await queue.get(), await queue.get()] == [{"n": 1}, {"n": 2}]


def test_configured_protocol_shares_the_factory_options_as_class_attributes():
    factory = WebSocketFactory(None, server="test")
    factory.setProtocolOptions(autoPingInterval=7, perMessageCompressionAccept=deflate_acceptor(1024))
    protocol_class = configured_protocol(factory)
    assert issubclass(protocol_class, ChatWebSocketProtocol)
    protocol = protocol_class()
    assert protocol.autoPingInterval == 7 and "autoPingInterval" not in vars(protocol)
    # A function option is called with the offers only, not bound as a method.
    assert protocol.perMessageCompressionAccept([]) is None


def test_an_open_socket_shares_the_empty_send_queue_until_a_queued_write_needs_one():
    protocol = configured_protocol(WebSocketFactory(None, server="test"))()
    protocol.trafficStats = TrafficStats()
    protocol.send_queue = deque()  # as autobahn's connectionMade leaves it
    protocol.__dict__.pop("send_queue")  # what onOpen does with an empty one
    assert protocol.send_queue == () and len(protocol.send_queue) == 0

    class Transport:
        def __init__(self):
            self.written = []

        def write(self, data):
            self.written.append(data)

    protocol.transport = Transport()
    protocol.state = protocol.STATE_OPEN
    protocol.triggered = True  # a queued write would wait for the reactor; not run here
    protocol.sendData(b"plain")
    assert protocol.transport.written == [b"plain"] and "send_queue" not in vars(protocol)
    protocol.sendData(b"queued", sync=True)
    assert list(protocol.send_queue) == [(b"queued", True)]
