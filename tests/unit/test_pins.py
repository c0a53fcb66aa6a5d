"""Canaries: the other packages' internals our code relies on, and the pins that hold them still.

chatproject/daphne_adapter.py, chat/realtime/layers.py and a few lines elsewhere subclass or
reach into Daphne, autobahn, Twisted, Channels and channels-redis past their public API. Each
test here checks one such name the way our code uses it (it exists, takes the arguments we
pass, has the shape we read; on a real tiny object where that is cheap) and, failing, names
the pin in requirements.txt to check and the file of ours to review. The first tests check
the installed versions are the pinned ones, so a moved pin fails here first.
"""

import ast
import asyncio
import functools
import importlib.metadata
import inspect
import re
import socket
import struct
import textwrap
import time
from collections import deque
from pathlib import Path

import autobahn.websocket.protocol
import daphne.server
import daphne.ws_protocol
import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflate, PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from channels.consumer import AsyncConsumer, get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer
from channels.routing import URLRouter
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from redis import asyncio as aioredis
from twisted.internet import protocol as twisted_protocol
from twisted.internet import tcp
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from chat.realtime.layers import RedisPubSubLayer
from chatproject.daphne_adapter import ChatWebSocketProtocol, deflate_acceptor, try_write
from tests.support.wsframes import client_frame, handshake_request, server_frames

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"

ADAPTER = "chatproject/daphne_adapter.py"
UPGRADE_FIRST = "chatproject/upgrade_first.py"
SERVER = "chatproject/server.py"
LAYERS = "chat/realtime/layers.py"
CONSUMER = "chat/realtime/consumer.py"
ROUTING = "chat/realtime/routing.py"

# Which of our files reach past each package's public API (the canaries below say where).
RELIANT = {
    "daphne": (ADAPTER, SERVER, UPGRADE_FIRST),
    "autobahn": (ADAPTER,),
    "twisted": (ADAPTER, UPGRADE_FIRST),
    "channels": (LAYERS, CONSUMER, ROUTING),
    "channels-redis": (LAYERS,),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins() -> dict[str, str]:
    """requirements.txt's `name[extras]==version` lines (as written there), by canonical name."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"requirements.txt: {line!r} is not pinned exactly (name==version)"
        pins[canonical(match[1])] = line
    return pins


PINS = requirement_pins()


def why(package: str, ours: str, what: str) -> str:
    """The failure message: what changed, the pin to check, and our file that relies on it."""
    return f"{what} -- check the {PINS[package]} pin in requirements.txt; {ours} relies on it"


def pinned_version(package: str) -> str:
    return PINS[package].split("==", 1)[1]


def params(owner, name: str) -> list[str]:
    """The parameter names of owner.name; [] if it is gone (the caller's assert then says what changed)."""
    func = inspect.getattr_static(owner, name, None)
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    return list(inspect.signature(func).parameters) if callable(func) else []


# -- the pins themselves -------------------------------------------------------


@pytest.mark.parametrize("package", sorted(PINS))
def test_installed_version_is_the_pinned_one(package):
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    reliant = RELIANT.get(package)
    hint = f"; {', '.join(reliant)} rely on its internals: run tests/unit/test_pins.py" if reliant else ""
    assert installed == pinned_version(package), (
        f"{package} {installed} is installed but requirements.txt pins {PINS[package]}{hint}")


def test_every_package_whose_internals_we_use_is_pinned():
    for package, ours in RELIANT.items():
        assert package in PINS, f"{package} is not pinned in requirements.txt; {', '.join(ours)} rely on its internals"


# -- helpers: an autobahn server socket on a Twisted string transport ------------


class Transport(StringTransport):
    """StringTransport, but unregistering no producer is allowed, as on Twisted's TCP transport."""

    def unregisterProducer(self):
        self.producer = None


def autobahn_socket(protocol_class=WebSocketServerProtocol, **options):
    """A server protocol of autobahn's, connected to a string transport (no reactor, no timers)."""
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0, **options)
    factory.protocol = protocol_class
    protocol = factory.buildProtocol(None)
    transport = Transport()
    protocol.makeConnection(transport)
    return protocol, transport


# -- Daphne (chatproject/daphne_adapter.py, chatproject/server.py) ----------------


def test_daphne_server_calls_ready_callable_once_run_made_connections_and_ws_factory():
    assert "ready_callable" in params(Server, "__init__"), why("daphne", ADAPTER, "Server(ready_callable=) is gone")
    run = inspect.getsource(Server.run)
    ready = run.find("self.ready_callable()")
    assert ready > 0, why("daphne", ADAPTER, "Server.run no longer calls ready_callable (ChatServer configures there)")
    for made in ("self.connections = {}", "self.ws_factory = WebSocketFactory("):
        assert 0 < run.find(made) < ready, why(
            "daphne", ADAPTER, f"Server.run no longer does `{made}` before ready_callable (configure_websockets uses it)")


def test_daphne_server_run_listens_with_the_http_factory_it_assigns():
    run = inspect.getsource(Server.run)
    made, listen = run.find("self.http_factory = HTTPFactory(self)"), run.find("ep.listen(self.http_factory)")
    assert 0 < made < listen, why(
        "daphne", ADAPTER, "Server.run no longer assigns self.http_factory and then listens with it "
        "(ChatServer's http_factory setter puts FirstRequest in front)")


# What daphne.http_protocol.WebRequest.process checks and does for an upgrade, which
# chatproject/upgrade_first.py does on the raw head instead; any change here is reviewed there.
WEBREQUEST_UPGRADE = (
    "if not HEADER_NAME_RE.fullmatch(name):",
    "if INVALID_HEADER_VALUE_BYTES.intersection(value):",
    'upgrade_header = self.requestHeaders.getRawHeaders(b"Upgrade")[0]',
    'self.path.decode("ascii")',
    'self.query_string = self.uri.split(b"?", 1)[1]',
    'self.query_string.decode("ascii")',
    'if upgrade_header and upgrade_header.lower() == b"websocket":',
    "protocol = self.server.ws_factory.buildProtocol(",
    "protocol._raw_query_string = self.query_string",
    "transport.wrappedProtocol = protocol",
    "transport.protocol = protocol",
    "protocol.makeConnection(transport)",
    'data = self.method + b" " + self.uri + b" HTTP/1.1\\x0d\\x0a"',
    "data += self.content.read()",
    "protocol.dataReceived(data)",
)


def test_daphne_webrequest_upgrades_as_first_request_does_it():
    import daphne.http_protocol

    source = inspect.getsource(daphne.http_protocol.WebRequest.process)
    upgrade = source[:source.index("# Boring old HTTP.")]
    for line in WEBREQUEST_UPGRADE:
        assert line in upgrade, why("daphne", UPGRADE_FIRST, f"WebRequest.process no longer has `{line}`")
    # Nothing else is checked before the hand-over: as many `if `s (comments included) and error
    # answers as on the pin.
    assert upgrade.count("if ") == 13 and upgrade.count("self.basic_error(") == 4, why(
        "daphne", UPGRADE_FIRST, "WebRequest.process checks something new before an upgrade")
    assert daphne.http_protocol.HTTPFactory.buildProtocol.__qualname__ == "HTTPFactory.buildProtocol", why(
        "daphne", UPGRADE_FIRST, "HTTPFactory.buildProtocol is gone (FirstRequest builds the channel with it)")


def test_daphne_server_connections_map_each_protocol_to_a_dict():
    server = Server(None, endpoints=["tcp:port=0"])
    server.connections = {}
    protocol = object()
    server.protocol_connected(protocol)
    assert isinstance(server.connections.get(protocol), dict), why(
        "daphne", ADAPTER, "Server.connections no longer maps a protocol to a dict")


def test_daphne_marks_a_websocket_disconnected_only_in_on_close_and_server_reject():
    # RawSender checks autobahn's state instead of connections[protocol]["disconnected"]:
    # right while these are the only places (a rejected socket never opened).
    tree = ast.parse(textwrap.dedent(inspect.getsource(daphne.ws_protocol.WebSocketProtocol)))
    marking = sorted(node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                     and "protocol_disconnected" in ast.unparse(node))
    assert marking == ["onClose", "serverReject"], why(
        "daphne", ADAPTER, f"the WebSocket protocol marks itself disconnected in {marking}: review RawSender's check")


async def test_daphne_create_application_is_what_chat_server_create_application_copies():
    assert params(Server, "create_application") == ["self", "protocol", "scope"], why(
        "daphne", ADAPTER, "Server.create_application(protocol, scope) changed signature or is gone")
    calls = []

    async def app(*, scope, receive, send):
        calls.append((scope, receive, send))

    server = Server(app, endpoints=["tcp:port=0"])
    protocol = object()
    server.connections = {protocol: {"connected": time.time()}}
    queue = server.create_application(protocol, {"type": "websocket"})
    instance = server.connections[protocol].get("application_instance")
    assert isinstance(instance, asyncio.Future), why(
        "daphne", ADAPTER, "create_application no longer keeps connections[protocol]['application_instance']")
    await instance
    scope, receive, send = calls[0]
    assert scope["asgi"] == {"version": "3.0"} and receive == queue.get, why(
        "daphne", ADAPTER, "create_application no longer hands the app its scope and input queue's get")
    assert isinstance(send, functools.partial) and send.func == server.handle_reply and send.args == (protocol,), why(
        "daphne", ADAPTER, "create_application no longer sends through partial(handle_reply, protocol)")


async def test_daphne_server_handle_reply_passes_replies_to_the_protocol_until_it_disconnected():
    assert params(Server, "handle_reply") == ["self", "protocol", "message"], why(
        "daphne", ADAPTER, "Server.handle_reply(protocol, message) changed signature or is gone")
    assert inspect.iscoroutinefunction(Server.handle_reply), why("daphne", ADAPTER, "Server.handle_reply is not async")

    class Protocol:
        def __init__(self):
            self.replies = []

        def handle_reply(self, message):
            self.replies.append(message)

    server = Server(None, endpoints=["tcp:port=0"])
    protocol = Protocol()
    server.connections = {protocol: {}}
    await server.handle_reply(protocol, {"type": "websocket.send", "text": "a"})
    server.connections[protocol]["disconnected"] = time.time()
    await server.handle_reply(protocol, {"type": "websocket.send", "text": "b"})
    assert protocol.replies == [{"type": "websocket.send", "text": "a"}], why(
        "daphne", ADAPTER, "Server.handle_reply no longer calls protocol.handle_reply(message) while connected")


def test_daphne_protocol_handle_reply_and_server_send_take_what_ours_pass():
    assert params(WebSocketProtocol, "handle_reply") == ["self", "message"], why(
        "daphne", ADAPTER, "WebSocketProtocol.handle_reply(message) changed signature or is gone")
    assert params(WebSocketProtocol, "serverSend")[:3] == ["self", "content", "binary"], why(
        "daphne", ADAPTER, "WebSocketProtocol.serverSend(content, binary) changed signature or is gone")
    source = inspect.getsource(WebSocketProtocol.handle_reply)
    assert 'message.get("text", None)' in source, why(
        "daphne", ADAPTER, "WebSocketProtocol.handle_reply changed how it reads text (ours sends empty frames)")


def test_daphne_reads_application_deferred_only_in_on_connect():
    module = inspect.getsource(daphne.ws_protocol) + inspect.getsource(daphne.server)
    on_connect = inspect.getsource(WebSocketProtocol.onConnect)
    assert module.count("application_deferred") == on_connect.count("application_deferred") > 0, why(
        "daphne", ADAPTER, "Daphne reads WebSocketProtocol.application_deferred outside onConnect (ours drops it in onOpen)")


def test_daphne_reads_only_request_path_after_the_handshake():
    read = set(re.findall(r"self\.request\.(\w+)", inspect.getsource(daphne.ws_protocol)))
    assert read == {"path"}, why(
        "daphne", ADAPTER, f"WebSocketProtocol reads self.request.{sorted(read - {'path'})} (ours keeps only .path)")


def test_daphne_cli_builds_its_server_from_server_class():
    assert CommandLineInterface.server_class is Server, why("daphne", SERVER, "CommandLineInterface.server_class is gone")
    assert "self.server_class(" in inspect.getsource(CommandLineInterface.run), why(
        "daphne", SERVER, "CommandLineInterface.run no longer builds self.server_class")


# -- autobahn (chatproject/daphne_adapter.py) --------------------------------------


def test_autobahn_states_connecting_and_open():
    connecting = getattr(WebSocketProtocol, "STATE_CONNECTING", None)
    opened = getattr(WebSocketProtocol, "STATE_OPEN", None)
    assert isinstance(connecting, int) and isinstance(opened, int) and connecting != opened, why(
        "autobahn", ADAPTER, "WebSocketProtocol.STATE_CONNECTING / STATE_OPEN changed")
    protocol, transport = autobahn_socket()
    assert protocol.state == connecting, why("autobahn", ADAPTER, "a new socket is not in STATE_CONNECTING")
    protocol.dataReceived(handshake_request())
    assert protocol.state == opened, why("autobahn", ADAPTER, "a socket is not in STATE_OPEN after the handshake")


def test_autobahn_config_attrs_are_factory_options_read_only_by_connection_made():
    names = WebSocketServerProtocol.CONFIG_ATTRS
    factory = WebSocketServerFactory()
    missing = [name for name in names if not hasattr(factory, name)]
    assert names and not missing, why("autobahn", ADAPTER, f"CONFIG_ATTRS names no factory option: {missing}")
    readers = []
    for package in (Path(autobahn.__file__).parent, Path(daphne.server.__file__).parent):
        for path in package.rglob("*.py"):
            if any(part.startswith("test") for part in path.relative_to(package).parts):
                continue
            readers += [f"{path.name}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                        if re.search(r"\.CONFIG_ATTRS\b", line)]
    connection_made = getattr(autobahn.websocket.protocol.WebSocketProtocol, "_connectionMade", None)
    connection_made = inspect.getsource(connection_made) if connection_made else ""
    assert len(readers) == 1 and "for configAttr in self.CONFIG_ATTRS" in connection_made, why(
        "autobahn", ADAPTER, f"CONFIG_ATTRS is read in {readers}, not only by _connectionMade's copy loop "
        "(configured_protocol empties it)")


def test_autobahn_connection_made_copies_only_the_options_an_instance_lacks(monkeypatch):
    printed = []
    monkeypatch.setattr(autobahn.websocket.protocol, "pformat", lambda obj: printed.append(obj) or "")
    shared = type("Shared", (WebSocketServerProtocol,), {"autoPingInterval": 7})
    protocol, _ = autobahn_socket(shared, autoPingInterval=3)
    assert protocol.autoPingInterval == 7 and "autoPingInterval" not in vars(protocol), why(
        "autobahn", ADAPTER, "_connectionMade copies an option the class already has (configured_protocol shares them)")
    assert "openHandshakeTimeout" in vars(protocol), why("autobahn", ADAPTER, "_connectionMade no longer copies options")
    assert [name for name, *_ in printed[0]] == list(WebSocketServerProtocol.CONFIG_ATTRS), why(
        "autobahn", ADAPTER, "_connectionMade's debug line no longer pformats the walk over CONFIG_ATTRS")


def test_autobahn_per_message_compress_is_none_unless_deflate_was_negotiated():
    protocol, _ = autobahn_socket()
    assert "_perMessageCompress" in vars(protocol) and protocol._perMessageCompress is None, why(
        "autobahn", ADAPTER, "_perMessageCompress is not None on a new socket")
    protocol.dataReceived(handshake_request())
    assert protocol._perMessageCompress is None, why(
        "autobahn", ADAPTER, "_perMessageCompress is set without permessage-deflate (ours then writes raw frames)")
    protocol, _ = autobahn_socket(perMessageCompressionAccept=deflate_acceptor(1024))
    protocol.dataReceived(handshake_request(extensions=b"permessage-deflate"))
    assert isinstance(protocol._perMessageCompress, PerMessageDeflate), why(
        "autobahn", ADAPTER, "_perMessageCompress is not the negotiated PerMessageDeflate")
    assert "self._perMessageCompress is not None" in inspect.getsource(WebSocketServerProtocol.sendMessage), why(
        "autobahn", ADAPTER, "sendMessage no longer compresses only when _perMessageCompress is set")


def test_autobahn_deflate_accept_takes_max_message_size():
    assert "max_message_size" in params(PerMessageDeflateOfferAccept, "__init__"), why(
        "autobahn", ADAPTER, "PerMessageDeflateOfferAccept(max_message_size=) is gone (the compression-bomb bound)")
    assert deflate_acceptor(1024)([PerMessageDeflateOffer()]).max_message_size == 1024, why(
        "autobahn", ADAPTER, "PerMessageDeflateOfferAccept no longer keeps max_message_size")


def test_autobahn_send_data_takes_data_sync_chopsize():
    assert params(WebSocketServerProtocol, "sendData")[:4] == ["self", "data", "sync", "chopsize"], why(
        "autobahn", ADAPTER, "sendData(data, sync, chopsize) changed signature or is gone (ChatWebSocketProtocol overrides it)")


def test_autobahn_send_queue_is_a_deque_used_only_for_sync_or_chopped_writes():
    protocol, transport = autobahn_socket(type("StandIn", (WebSocketServerProtocol,), {"send_queue": ()}))
    assert type(vars(protocol).get("send_queue")) is deque, why(
        "autobahn", ADAPTER, "the connection no longer starts with a send_queue deque")
    protocol.dataReceived(handshake_request())
    del protocol.send_queue  # ChatWebSocketProtocol.onOpen: the class's empty stand-in takes over
    transport.clear()
    try:
        protocol.sendData(b"plain")
    except AttributeError as exc:
        raise AssertionError(why("autobahn", ADAPTER, "sendData queues a plain write (the () stand-in cannot)")) from exc
    assert transport.value() == b"plain", why("autobahn", ADAPTER, "sendData does not write a plain write at once")


def test_autobahn_send_message_takes_payload_and_is_binary():
    assert params(WebSocketServerProtocol, "sendMessage")[:3] == ["self", "payload", "isBinary"], why(
        "autobahn", ADAPTER, "sendMessage(payload, isBinary) changed signature or is gone (RawSender calls it)")


@pytest.mark.parametrize("name", ChatWebSocketProtocol.HANDSHAKE_LEFTOVERS)
def test_autobahn_handshake_leaves_this_attribute_on_the_socket(name):
    seen = {}

    class Opened(WebSocketServerProtocol):
        def onOpen(self):
            seen.update(vars(self))

    protocol, _ = autobahn_socket(Opened)
    protocol.dataReceived(handshake_request())
    assert name in seen, why("autobahn", ADAPTER, f"the handshake no longer sets {name} (HANDSHAKE_LEFTOVERS)")


def test_autobahn_socket_works_on_with_the_handshake_leftovers_dropped():
    popped = []

    class Dropping(WebSocketServerProtocol):
        def onOpen(self):
            for name in ChatWebSocketProtocol.HANDSHAKE_LEFTOVERS:
                self.__dict__.pop(name)
                popped.append(name)

        def onMessage(self, payload, isBinary):
            self.sendMessage(payload, isBinary)

    protocol, transport = autobahn_socket(Dropping)
    protocol.dataReceived(handshake_request())
    protocol.dataReceived(client_frame(0x1, b"echo"))
    protocol.dataReceived(client_frame(0x9, b"ping"))
    protocol.dataReceived(client_frame(0x8, struct.pack("!H", 1000)))
    protocol.connectionLost(Failure(ConnectionError("closed")))
    frames = server_frames(transport.value())
    assert popped == list(ChatWebSocketProtocol.HANDSHAKE_LEFTOVERS) and frames[:2] == [(0x1, b"echo"), (0xA, b"ping")], \
        why("autobahn", ADAPTER, f"a socket without the handshake leftovers misbehaves: {frames}")
    assert frames[2][0] == 0x8, why("autobahn", ADAPTER, "a socket without the handshake leftovers cannot close")


@pytest.mark.parametrize("ending", ["dropped", "closed by the client"])
def test_autobahn_leaves_state_open_before_daphne_hears_on_close(ending):
    states = []

    class Recording(WebSocketServerProtocol):
        def onClose(self, wasClean, code, reason):
            states.append(self.state)  # where Daphne's onClose marks the socket disconnected

    protocol, _transport = autobahn_socket(Recording)
    protocol.dataReceived(handshake_request())
    assert protocol.state == WebSocketProtocol.STATE_OPEN
    if ending == "closed by the client":
        protocol.dataReceived(client_frame(0x8, struct.pack("!H", 1000)))
    protocol.connectionLost(Failure(ConnectionError("closed")))
    assert states and all(state != WebSocketProtocol.STATE_OPEN for state in states), why(
        "autobahn", ADAPTER, f"onClose ran in STATE_OPEN ({states}): RawSender must check Daphne's disconnected again")
    onclose_callers = re.findall(r"self\._onClose\(|self\.onClose\(", inspect.getsource(autobahn.websocket.protocol))
    assert len(onclose_callers) == 2, why(
        "autobahn", ADAPTER, "onClose is called from a new place: check it runs after STATE_OPEN ends (RawSender)")


# -- Twisted (chatproject/daphne_adapter.py) ---------------------------------------


class Reactor:
    """What tcp.Server asks of a reactor while nothing runs."""

    def __init__(self):
        self.writers = []

    def addReader(self, reader):
        pass

    def removeReader(self, reader):
        pass

    def addWriter(self, writer):
        self.writers.append(writer)

    def removeWriter(self, writer):
        pass


@pytest.fixture
def tcp_server():
    """A real tcp.Server over one end of a socket pair; yields (transport, peer socket)."""
    ours, peer = socket.socketpair()
    peer.settimeout(5)
    transport = tcp.Server(ours, twisted_protocol.Protocol(), ("127.0.0.1", 1), None, 1, Reactor())
    transport.repstr = "<tcp.Server under test>"  # set from the listening port, which there is none of
    yield transport, peer
    ours.close()
    peer.close()


@pytest.mark.parametrize(("name", "fresh"), [
    ("TLS", False), ("connected", True), ("disconnecting", False), ("dataBuffer", b""), ("_tempDataBuffer", []),
])
def test_twisted_tcp_server_attribute(tcp_server, name, fresh):
    transport, _ = tcp_server
    assert hasattr(transport, name) and getattr(transport, name) == fresh, why(
        "twisted", ADAPTER, f"tcp.Server.{name} is {getattr(transport, name, '<gone>')!r} on a fresh connection, "
        f"not {fresh!r} (try_write reads it)")


def test_twisted_tcp_server_socket_and_write_buffer(tcp_server):
    transport, peer = tcp_server
    assert isinstance(transport.socket, socket.socket), why("twisted", ADAPTER, "tcp.Server.socket is not the socket")
    try_write(transport, b"direct")
    assert peer.recv(100) == b"direct" and not getattr(transport, "_tempDataBuffer", None), why(
        "twisted", ADAPTER, "a write straight on tcp.Server.socket did not go out")
    transport.write(b"queued")
    assert getattr(transport, "_tempDataBuffer", None) == [b"queued"], why(
        "twisted", ADAPTER, "tcp.Server.write() no longer buffers in dataBuffer / _tempDataBuffer")
    try_write(transport, b"behind")
    assert getattr(transport, "_tempDataBuffer", None) == [b"queued", b"behind"], why(
        "twisted", ADAPTER, "try_write overtook a buffered write")


def test_twisted_tcp_server_producer_and_unregister_producer(tcp_server):
    transport, _ = tcp_server
    assert transport.producer is None, why("twisted", ADAPTER, "tcp.Server.producer is not None on a fresh connection")
    producer = object()
    transport.registerProducer(producer, True)
    assert transport.producer is producer, why("twisted", ADAPTER, "tcp.Server.registerProducer no longer sets .producer")
    transport.unregisterProducer()
    assert transport.producer is None, why("twisted", ADAPTER, "tcp.Server.unregisterProducer() no longer clears it")


def test_twisted_tls_transport_producer_and_unregister_producer():
    assert getattr(TLSMemoryBIOProtocol, "_producer", "<gone>") is None, why(
        "twisted", ADAPTER, "TLSMemoryBIOProtocol._producer has no None default (ChatWebSocketProtocol.onOpen reads it)")
    assert "self._producer = " in inspect.getsource(TLSMemoryBIOProtocol.registerProducer), why(
        "twisted", ADAPTER, "TLSMemoryBIOProtocol.registerProducer no longer keeps the producer in ._producer")
    assert params(TLSMemoryBIOProtocol, "unregisterProducer") == ["self"], why(
        "twisted", ADAPTER, "TLSMemoryBIOProtocol.unregisterProducer() changed signature or is gone")


# -- Channels (chat/realtime/layers.py, consumer.py, routing.py) ------------------


async def test_channels_in_memory_layer_sweeps_through_clean_expired_on_receive_and_group_send():
    assert params(InMemoryChannelLayer, "_clean_expired") == ["self"], why(
        "channels", LAYERS, "InMemoryChannelLayer._clean_expired() changed signature or is gone (LocalChannelLayer overrides it)")

    class Counting(InMemoryChannelLayer):
        sweeps = 0

        def _clean_expired(self):
            self.sweeps += 1

    layer = Counting()
    await layer.group_send("g", {"type": "x"})
    await layer.send("c", {"type": "x"})
    await layer.receive("c")
    assert layer.sweeps >= 2, why(
        "channels", LAYERS, "receive and group_send no longer sweep through _clean_expired (LocalChannelLayer's guard)")


async def test_channels_remove_from_groups_takes_a_channel():
    assert params(InMemoryChannelLayer, "_remove_from_groups") == ["self", "channel"], why(
        "channels", LAYERS, "InMemoryChannelLayer._remove_from_groups(channel) changed signature or is gone")
    layer = InMemoryChannelLayer()
    await layer.group_add("a", "c")
    await layer.group_add("b", "c")
    layer._remove_from_groups("c")
    assert not any("c" in members for members in layer.groups.values()), why(
        "channels", LAYERS, "_remove_from_groups no longer drops the channel from every group")


async def test_channels_in_memory_channels_hold_queues_of_expiry_and_message():
    layer = InMemoryChannelLayer(expiry=60)
    before = time.time()
    await layer.send("c", {"type": "x"})
    queue = layer.channels.get("c")
    assert isinstance(layer.channels, dict) and isinstance(queue, asyncio.Queue), why(
        "channels", LAYERS, "InMemoryChannelLayer.channels no longer maps a channel to an asyncio.Queue")
    entry = getattr(queue, "_queue", [None])[0]
    assert isinstance(entry, tuple) and before + 60 <= entry[0] <= time.time() + 60 and entry[1] == {"type": "x"}, why(
        "channels", LAYERS, f"a queued message is {entry!r}, not (time.time() + expiry, message) in queue._queue")


def test_channels_async_consumer_call_sets_only_what_room_consumer_call_sets():
    tree = ast.parse(textwrap.dedent(inspect.getsource(AsyncConsumer.__call__)))
    assigned = {target.attr for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name) and target.value.id == "self"}
    # RoomConsumer.__call__ sets scope, channel_layer (None) and base_send; the rest is for a layer it has not.
    unknown = assigned - {"scope", "channel_layer", "channel_name", "channel_receive", "base_send"}
    assert "base_send" in assigned and not unknown, why(
        "channels", CONSUMER, f"AsyncConsumer.__call__ now sets {sorted(unknown) or 'no base_send'} "
        "(RoomConsumer.__call__ replaces it)")
    assert get_handler_name({"type": "websocket.receive"}) == "websocket_receive", why(
        "channels", CONSUMER, "get_handler_name no longer maps a type to its handler's name")


async def test_channels_websocket_consumer_writes_through_base_send():
    consumer = AsyncWebsocketConsumer()
    sent = []

    async def base_send(message):
        sent.append(message)

    consumer.base_send = base_send
    await consumer.accept()
    await consumer.send(text_data="x")
    await consumer.close(code=4000)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"], why(
        "channels", CONSUMER, "AsyncWebsocketConsumer no longer writes through self.base_send")


async def test_channels_url_router_refuses_an_unknown_path_with_no_route_found():
    async def receive():
        raise AssertionError("not called")

    with pytest.raises(ValueError) as raised:
        await URLRouter([])({"type": "websocket", "path": "/nowhere/"}, receive, receive)
    assert str(raised.value).startswith("No route found"), why(
        "channels", ROUTING, f"URLRouter's unknown-path error is {raised.value!r} (QuietURLRouter matches its text)")


# -- channels-redis (chat/realtime/layers.py) --------------------------------------


@pytest.fixture
async def redis_layer():
    """Our pub/sub layer aimed at a port nothing listens on: nothing here connects."""
    layer = RedisPubSubLayer(hosts=["redis://127.0.0.1:9"])
    yield layer
    if hasattr(RedisPubSubChannelLayer, "_get_layer"):
        for shard in getattr(layer._get_layer(), "_shards", ()):
            await shard.flush()


async def test_channels_redis_get_layer_returns_this_loops_layer(redis_layer):
    assert params(RedisPubSubChannelLayer, "_get_layer") == ["self"], why(
        "channels-redis", LAYERS, "RedisPubSubChannelLayer._get_layer() changed signature or is gone")
    inner = redis_layer._get_layer()
    assert isinstance(inner, RedisPubSubLoopLayer) and redis_layer._get_layer() is inner, why(
        "channels-redis", LAYERS, "_get_layer() no longer returns this loop's RedisPubSubLoopLayer")
    assert inner.channel_layer is redis_layer, why(
        "channels-redis", LAYERS, "the loop layer no longer serializes with the outer layer")


async def test_channels_redis_get_group_channel_name_takes_a_group(redis_layer):
    inner = redis_layer._get_layer()
    assert params(RedisPubSubLoopLayer, "_get_group_channel_name") == ["self", "group"], why(
        "channels-redis", LAYERS, "_get_group_channel_name(group) changed signature or is gone")
    assert isinstance(inner._get_group_channel_name("chat.room.a"), str), why(
        "channels-redis", LAYERS, "_get_group_channel_name does not return a channel name")


async def test_channels_redis_get_shard_takes_a_channel(redis_layer):
    inner = redis_layer._get_layer()
    assert len(params(RedisPubSubLoopLayer, "_get_shard")) == 2, why(
        "channels-redis", LAYERS, "_get_shard(channel) changed signature or is gone")
    assert isinstance(inner._get_shard("asgi__group__chat.room.a"), RedisSingleShardConnection), why(
        "channels-redis", LAYERS, "_get_shard does not return a RedisSingleShardConnection")


async def test_channels_redis_serialize_round_trips(redis_layer):
    assert params(RedisPubSubChannelLayer, "serialize") == ["self", "message"], why(
        "channels-redis", LAYERS, "RedisPubSubChannelLayer.serialize(message) changed signature or is gone")
    data = redis_layer.serialize({"type": "e", "n": 1})
    assert isinstance(data, bytes) and redis_layer.deserialize(data) == {"type": "e", "n": 1}, why(
        "channels-redis", LAYERS, "serialize no longer makes the bytes deserialize reads")


async def test_channels_redis_group_send_publishes_the_serialized_message_on_the_group_channel_shard(
        redis_layer, monkeypatch):
    inner = redis_layer._get_layer()
    published = []
    for shard in inner._shards:
        async def publish(channel, data, shard=shard):
            published.append((shard, channel, data))

        monkeypatch.setattr(shard, "publish", publish)
    message = {"type": "room.event", "texts": ["{}"]}
    await redis_layer.group_send("chat.room.a", message)
    channel = inner._get_group_channel_name("chat.room.a")
    assert published == [(inner._get_shard(channel), channel, redis_layer.serialize(message))], why(
        "channels-redis", LAYERS, "group_send no longer publishes serialize(message) on "
        "_get_shard(_get_group_channel_name(group)); group_send_many must publish what group_send does")


async def test_channels_redis_shard_lock_and_publish_path():
    source = inspect.getsource(RedisSingleShardConnection.publish)
    steps = [source.find(step) for step in ("async with self._lock", "self._ensure_redis()", "self._redis.publish(")]
    assert -1 not in steps and steps == sorted(steps), why(
        "channels-redis", LAYERS, "shard.publish is no longer `async with _lock: _ensure_redis(); _redis.publish()` "
        "(group_send_many does the same with a pipeline)")


async def test_channels_redis_shard_ensure_redis_makes_a_client_with_a_non_transactional_pipeline(redis_layer):
    shard = redis_layer._get_layer()._shards[0]
    assert isinstance(getattr(shard, "_lock", None), asyncio.Lock), why("channels-redis", LAYERS, "shard._lock is not an asyncio.Lock")
    assert params(RedisSingleShardConnection, "_ensure_redis") == ["self"], why(
        "channels-redis", LAYERS, "shard._ensure_redis() changed signature or is gone")
    shard._ensure_redis()
    assert isinstance(getattr(shard, "_redis", None), aioredis.Redis), why(
        "channels-redis", LAYERS, "shard._ensure_redis() no longer makes shard._redis, a redis.asyncio.Redis")
    async with shard._redis.pipeline(transaction=False) as pipe:
        pipe.publish("asgi__group__x", b"data")
        assert len(pipe) == 1, why("channels-redis", LAYERS, "shard._redis.pipeline() does not queue a publish")


# -- the shutdown drain (protocol section 9) ------------------------------------------


def test_daphne_kills_applications_from_a_before_shutdown_trigger_and_reports_listening_ports():
    run = inspect.getsource(Server.run)
    assert 'reactor.addSystemEventTrigger("before", "shutdown", self.kill_all_applications)' in run, why(
        "daphne", ADAPTER, "Server.run no longer runs kill_all_applications before shutdown (ChatServer drains there)")
    assert "listener.addCallback(self.listen_success)" in run, why(
        "daphne", ADAPTER, "listen_success no longer receives each listening port (the drain stops them listening)")
    assert params(Server, "kill_all_applications") == ["self"], why(
        "daphne", ADAPTER, "Server.kill_all_applications() changed signature")
    assert "Deferred" in inspect.getsource(Server.kill_all_applications), why(
        "daphne", ADAPTER, "kill_all_applications no longer returns a Deferred for Twisted to wait on")


def test_daphne_server_close_takes_the_code_our_override_passes_on():
    assert params(WebSocketProtocol, "serverClose") == ["self", "code"], why(
        "daphne", ADAPTER, "WebSocketProtocol.serverClose(code) changed")
    assert "self.serverClose(code=message.get(\"code\", None))" in inspect.getsource(WebSocketProtocol.handle_reply), why(
        "daphne", ADAPTER, "handle_reply no longer closes through serverClose(code=...)")


def test_autobahn_refuses_1012_from_send_close_but_send_close_frame_sends_it():
    protocol, transport = autobahn_socket()
    protocol.dataReceived(handshake_request())
    with pytest.raises(Exception, match="invalid close code"):
        protocol.sendClose(code=1012)  # why our serverClose goes one level down for 1012
    transport.clear()
    protocol.sendCloseFrame(code=1012, reasonUtf8=b"server restart", isReply=False)
    [(opcode, payload)] = server_frames(transport.value())
    assert (opcode, struct.unpack("!H", payload[:2])[0]) == (8, 1012), why(
        "autobahn", ADAPTER, "sendCloseFrame(code=1012) no longer sends a close frame with that code")
    assert protocol.state == protocol.STATE_CLOSING
