"""A connection's first request (chatproject/upgrade_first.py): an upgrade straight to autobahn, the rest to Daphne.

Each case runs the same bytes through ChatServer with FirstRequest in front and through
Daphne's own HTTP channel, and compares what the application and the client get.
"""

import asyncio
import base64
import os

import pytest
from daphne.http_protocol import HTTPFactory
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatproject.daphne_adapter import ChatWebSocketProtocol, chat_server_class
from chatproject.upgrade_first import HEAD_TIMEOUT, MAX_HEAD, FirstRequest, websocket_upgrade

KEY = base64.b64encode(os.urandom(16))
UPGRADE = (b"GET /ws/rooms/lobby/?after=3&x=%20y HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
           b"Cookie: sessionid=abc; csrftoken=def\r\nAuthorization: Bearer t0ken\r\nX_Under: dropped\r\n"
           b"Sec-WebSocket-Protocol: chat.v1, other\r\nOrigin: https://chat.example\r\n\r\n")


def is_http_channel(protocol) -> bool:
    """Whether protocol is what Daphne's HTTP factory builds (Twisted's HTTP/1.1-or-2 channel)."""
    return type(protocol) is type(HTTPFactory(None).buildProtocol(None))


def head(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[0]


@pytest.mark.parametrize("request_head, query", [
    (head(UPGRADE), b"after=3&x=%20y"),
    (b"GET /ws/ HTTP/1.1\r\nupgrade: WebSocket\r\nContent-Length: 0", b""),
])
def test_a_plain_upgrade_is_handed_on_with_its_raw_query_string(request_head, query):
    assert websocket_upgrade(request_head) == query


@pytest.mark.parametrize("request_head", [
    b"POST /ws/ HTTP/1.1\r\nUpgrade: websocket",  # another method
    b"GET /ws/ HTTP/1.0\r\nUpgrade: websocket",  # another version
    b"GET http://x/ws/ HTTP/1.1\r\nUpgrade: websocket",  # absolute form
    "GET /ws/é HTTP/1.1\r\nUpgrade: websocket".encode(),  # Daphne: 400 for a non-ASCII path
    b"GET /ws/ HTTP/1.1\r\nBad Name: 1\r\nUpgrade: websocket",  # Daphne: 400 for the header name
    b"GET /ws/ HTTP/1.1\r\nX: a\x0bb\r\nUpgrade: websocket",  # Daphne: 400 for the header value
    b"GET /ws/ HTTP/1.1\r\nX: a\r\n b\r\nUpgrade: websocket",  # a folded line
    b"GET /ws/ HTTP/1.1\nUpgrade: websocket",  # a bare LF
    b"GET /ws/\rx HTTP/1.1\r\nUpgrade: websocket",  # a bare CR in the target
    b"GET /ws/ HTTP/1.1\r\nX: a\nb\r\nUpgrade: websocket",  # a bare LF in a header
    b"GET /ws/ HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 5",  # a body
    b"GET /ws/ HTTP/1.1\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked",
    b"GET /ws/ HTTP/1.1\r\nUpgrade: h2c",  # another upgrade
    b"GET /ws/ HTTP/1.1\r\nUpgrade: h2c\r\nUpgrade: websocket",  # Daphne reads the first
    b"GET /healthz HTTP/1.1\r\nHost: x",  # plain HTTP
])
def test_anything_else_goes_to_daphnes_http_channel(request_head):
    assert websocket_upgrade(request_head) is None


class Server:
    """A ChatServer as Server.run leaves it, with an app that records each scope and accepts sockets."""

    def __init__(self, *, upgrade_first: bool):
        self.scopes = []
        self.server = chat_server_class(compression=False, max_inflated=1 << 16, upgrade_first=upgrade_first)(
            self.app, endpoints=["tcp:port=0"])
        server = self.server
        server.connections = {}
        server.http_factory = HTTPFactory(server)  # what Server.run does
        server.ws_factory = WebSocketFactory(server, server="test")
        server.ws_factory.setProtocolOptions(openHandshakeTimeout=0, allowNullOrigin=True)
        server.configure_websockets()
        self.clock = Clock()
        if upgrade_first:
            server.http_factory.clock = self.clock  # FirstRequest's head timeout

    async def app(self, scope, receive, send):
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": "chat.v1"})
            await receive()
        else:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok " + scope["path"].encode()})

    def connect(self) -> tuple[object, StringTransport]:
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8000),
                                    peerAddress=IPv4Address("TCP", "127.0.0.1", 51234))
        first = self.server.http_factory.buildProtocol(transport.getPeer())
        transport.protocol = first
        first.makeConnection(transport)
        return first, transport


async def until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


async def upgrade_through(server: Server, chunks: list[bytes]) -> tuple[dict, bytes, object]:
    first, transport = server.connect()
    for chunk in chunks:
        transport.protocol.dataReceived(chunk)
    await until(lambda: b"\r\n\r\n" in transport.value())
    return server.scopes[-1], transport.value(), transport.protocol


def comparable(scope: dict) -> dict:
    return {k: v for k, v in scope.items() if k != "extensions"}  # its RawSender is per socket


async def test_an_upgrade_reaches_the_app_as_through_daphnes_channel_without_an_http_request():
    ours = Server(upgrade_first=True)
    stock = Server(upgrade_first=False)
    scope, response, protocol = await upgrade_through(ours, [UPGRADE])
    stock_scope, stock_response, stock_protocol = await upgrade_through(stock, [UPGRADE])
    assert comparable(scope) == comparable(stock_scope)
    assert scope["query_string"] == b"after=3&x=%20y" and scope["client"] == ["127.0.0.1", 51234]
    assert (b"sec-websocket-protocol", b"chat.v1, other") in scope["headers"]
    assert all(b"_" not in name for name, _ in scope["headers"])
    assert response == stock_response and response.startswith(b"HTTP/1.1 101 ")
    assert isinstance(protocol, ChatWebSocketProtocol) and protocol.state == protocol.STATE_OPEN
    # No HTTP request was made for it: Daphne tracks only the socket.
    assert list(ours.server.connections) == [protocol]
    assert {type(p).__name__ for p in stock.server.connections} == {"WebRequest", type(stock_protocol).__name__}


async def test_an_upgrade_arriving_a_byte_at_a_time_is_still_handed_on_whole():
    server = Server(upgrade_first=True)
    scope, response, protocol = await upgrade_through(server, [bytes([b]) for b in UPGRADE])
    assert response.startswith(b"HTTP/1.1 101 ") and isinstance(protocol, ChatWebSocketProtocol)
    assert scope["path"] == "/ws/rooms/lobby/"


async def test_frames_sent_with_the_upgrade_reach_the_socket():
    server = Server(upgrade_first=True)
    first, transport = server.connect()
    ping = bytes([0x89, 0x80]) + os.urandom(4)  # a masked, empty ping right behind the head
    first.dataReceived(UPGRADE + ping)
    await until(lambda: transport.value().endswith(bytes([0x8A, 0x00])))  # its pong
    assert transport.value().startswith(b"HTTP/1.1 101 ")


async def test_plain_http_and_a_bad_header_get_what_daphne_answers():
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /ws/rooms/a/ HTTP/1.1\r\nBad Name: 1\r\nUpgrade: websocket\r\n\r\n"):
        answers = []
        for upgrade_first in (True, False):
            server = Server(upgrade_first=upgrade_first)
            first, transport = server.connect()
            transport.protocol.dataReceived(request)
            await until(lambda transport=transport: b"\r\n\r\n" in transport.value())
            await asyncio.sleep(0)
            assert is_http_channel(transport.protocol)
            status, _, rest = transport.value().partition(b"\r\n")
            answers.append((status, rest.rpartition(b"\r\n\r\n")[2]))
        assert answers[0] == answers[1]
        assert answers[0][0] in (b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request")


async def test_a_head_that_is_not_an_upgrade_too_big_or_too_slow_goes_to_the_http_channel():
    server = Server(upgrade_first=True)
    first, transport = server.connect()
    transport.protocol.dataReceived(b"POST")
    assert is_http_channel(transport.protocol)  # at once: not a GET

    first, transport = server.connect()
    first.dataReceived(b"GET /" + b"a" * MAX_HEAD)
    assert is_http_channel(transport.protocol)

    first, transport = server.connect()
    first.dataReceived(b"GET /ws/rooms/a/ HTTP/1.1\r\nHost: x\r\n")
    assert isinstance(transport.protocol, FirstRequest)
    server.clock.advance(HEAD_TIMEOUT)
    channel = transport.protocol
    assert is_http_channel(channel) and first.transport is None and not server.clock.getDelayedCalls()
    channel.dataReceived(b"\r\n")  # the rest of the head: Daphne's channel answers (a plain GET here)
    await until(lambda: b"\r\n\r\n" in transport.value())
    assert transport.value().startswith(b"HTTP/1.1 200 ") and server.scopes[-1]["path"] == "/ws/rooms/a/"


def test_a_connection_closed_before_its_head_leaves_no_timer():
    server = Server(upgrade_first=True)
    first, transport = server.connect()
    first.dataReceived(b"GET /")
    first.connectionLost(None)
    assert not server.clock.getDelayedCalls()
