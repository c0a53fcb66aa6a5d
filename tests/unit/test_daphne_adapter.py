"""Our Daphne pieces (chatproject/daphne_adapter.py): the socket input queue, the shared options, a socket end to end."""

import asyncio
import pprint
import struct
from collections import deque

import autobahn.websocket.protocol
import pytest
from autobahn.websocket.protocol import TrafficStats
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chat.realtime.wire import RAW_SEND_EXTENSION, text_frame
from chatproject.daphne_adapter import (
    ChatWebSocketProtocol,
    InputQueue,
    RequestPath,
    chat_server_class,
    configured_protocol,
    deflate_acceptor,
)
from tests.support.wsframes import client_frame, handshake_request, server_frames


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


def test_importing_the_adapter_patches_nothing_in_autobahn():
    assert autobahn.websocket.protocol.pformat is pprint.pformat


def test_a_configured_socket_connects_without_copying_or_printing_the_options(monkeypatch):
    factory = WebSocketFactory(None, server="test")
    factory.setProtocolOptions(openHandshakeTimeout=0, autoPingInterval=7)
    protocol = configured_protocol(factory)()
    protocol.factory = factory
    printed = []
    monkeypatch.setattr(autobahn.websocket.protocol, "pformat", lambda obj: printed.append(obj) or "")
    protocol.makeConnection(StringTransport())
    assert printed == [[]]  # the debug line's option dump: nothing to format
    assert not set(vars(protocol)) & set(ChatWebSocketProtocol.CONFIG_ATTRS)  # nothing copied per socket
    assert protocol.autoPingInterval == 7 and protocol.openHandshakeTimeout == 0  # still in force


async def until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


class Transport(StringTransport):
    """StringTransport, but unregistering no producer is allowed, as on Twisted's TCP transport."""

    def unregisterProducer(self):
        self.producer = None


class HTTPChannel:
    """Stands in for Daphne's HTTP channel, registered as the transport's producer before the upgrade."""

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


async def test_chat_server_serves_a_socket_through_daphne_and_autobahn():
    events = []
    done = asyncio.Event()

    async def app(scope, receive, send):
        events.append(scope)
        events.append(await receive())
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": ""})  # an empty frame, which stock Daphne drops
        events.append(await receive())
        scope["extensions"][RAW_SEND_EXTENSION]([b"raw"], text_frame(b"raw"))
        await send({"type": "websocket.send", "text": "bye"})
        events.append(await receive())
        done.set()

    server = chat_server_class(compression=False, max_inflated=1 << 16)(app, endpoints=["tcp:port=0"])
    # What Server.run does before it calls the ready callable, which calls configure_websockets.
    server.connections = {}
    server.ws_factory = WebSocketFactory(server, server="test")
    server.ws_factory.setProtocolOptions(openHandshakeTimeout=0, allowNullOrigin=True)
    server.configure_websockets()
    protocol = server.ws_factory.buildProtocol(None)
    assert isinstance(protocol, ChatWebSocketProtocol)
    protocol._raw_query_string = b""  # what Daphne's HTTP channel hands over
    transport = Transport()
    transport.registerProducer(HTTPChannel(), True)
    protocol.makeConnection(transport)
    protocol.dataReceived(handshake_request(b"/ws/rooms/lobby/"))
    await until(lambda: protocol.state == protocol.STATE_OPEN and b"\r\n\r\n" in transport.value())
    response, _, frames = transport.value().partition(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101 ")
    # onOpen let go of the handshake and of the HTTP channel.
    assert transport.producer is None
    assert not set(vars(protocol)) & set(ChatWebSocketProtocol.HANDSHAKE_LEFTOVERS)
    assert isinstance(protocol.request, RequestPath) and protocol.request.path == "/ws/rooms/lobby/"
    assert "send_queue" not in vars(protocol)

    protocol.dataReceived(client_frame(0x1, b"hi"))
    await until(lambda: len(server_frames(transport.value().partition(b"\r\n\r\n")[2])) >= 3)
    protocol.dataReceived(client_frame(0x8, struct.pack("!H", 1000)))
    protocol.connectionLost(Failure(ConnectionError("closed")))
    await asyncio.wait_for(done.wait(), 5)
    scope = events[0]
    assert scope["type"] == "websocket" and scope["path"] == "/ws/rooms/lobby/"
    assert [e["type"] for e in events[1:]] == ["websocket.connect", "websocket.receive", "websocket.disconnect"]
    assert events[2]["text"] == "hi"
    frames = server_frames(transport.value().partition(b"\r\n\r\n")[2])
    assert frames[:3] == [(0x1, b""), (0x1, b"raw"), (0x1, b"bye")]
    assert frames[3][0] == 0x8  # autobahn answered the close
    await asyncio.wait_for(server.connections[protocol]["application_instance"], 5)


def test_the_access_log_keeps_http_and_refused_upgrades_and_leaves_socket_lives_to_the_chat():
    import io

    from daphne.access import AccessLogGenerator

    from chatproject.daphne_adapter import HttpAccessLog

    stream = io.StringIO()
    log = HttpAccessLog(AccessLogGenerator(stream))
    socket = {"client": "127.0.0.1:5000", "path": "/ws/rooms/lobby/"}
    for action in ("connecting", "connected", "disconnected"):
        log("websocket", action, socket)
    assert stream.getvalue() == ""  # the chat's own line per socket says more, once
    log("websocket", "rejected", socket)
    log("http", "complete", {"client": "127.0.0.1:5001", "method": "GET", "path": "/healthz", "status": 200, "size": 2})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "WSREJECT /ws/rooms/lobby/" in lines[0] and '"GET /healthz" 200 2' in lines[1]


def test_the_server_tunes_the_collector_once_ready_and_the_thresholds_come_from_the_environment():
    import gc

    from chatproject.daphne_adapter import GC_THRESHOLDS
    from chatproject.server import gc_thresholds

    assert gc_thresholds({}) == GC_THRESHOLDS == (700, 10, 100)
    assert gc_thresholds({"CHAT_GC_THRESHOLDS": " 2000, 20 "}) == (2000, 20)
    assert gc_thresholds({"CHAT_GC_THRESHOLDS": "0"}) == (0,)
    for bad in ("700,ten", "1,2,3,4", "-1", ","):
        with pytest.raises(SystemExit, match="CHAT_GC_THRESHOLDS"):
            gc_thresholds({"CHAT_GC_THRESHOLDS": bad})

    before = gc.get_threshold()
    server = chat_server_class(compression=False, max_inflated=1 << 16, gc_thresholds=(1234, 5, 67))(
        lambda scope, receive, send: None, endpoints=["tcp:port=0"])
    server.ws_factory = WebSocketFactory(server, server="test")
    try:
        server.ready_callable()  # what Server.run calls once it listens
        assert gc.get_threshold() == (1234, 5, 67)
        assert gc.get_freeze_count() > 0  # startup's objects are out of the collector's reach
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
