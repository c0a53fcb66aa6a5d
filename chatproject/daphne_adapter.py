"""Daphne's Server with what it lacks: permessage-deflate, empty frames, and a lighter socket.

Per idle socket, stock Daphne holds ~18 KiB of Python objects (tracemalloc, bench/bare_asgi.py);
the biggest are autobahn's protocol instance dict (~3.2 KiB: ~40 options copied from the
factory onto every instance) and Daphne's asyncio.Queue (~3 KiB: three deques and an
Event). Both are trimmed here, without changing what either does.
"""

import asyncio
import gc
import inspect
import logging
from collections import deque
from functools import partial

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, tcp

from chat.protocol.codes import CLOSE_SERVICE_RESTART
from chat.realtime.wire import RAW_SEND_EXTENSION, text_frame
from chatproject import metrics_setup
from chatproject.upgrade_first import UpgradeFirstFactory

logger = logging.getLogger(__name__)


class RequestPath:
    """What Daphne's protocol reads of autobahn's ConnectionRequest once the socket is open."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class ChatWebSocketProtocol(WebSocketProtocol):
    """Daphne's protocol, but an empty frame is sent, and the handshake is dropped once done.

    Daphne tests `if message.get("text")`, so `""` and `b""` vanish; RFC 6455 allows empty
    frames and the Autobahn echo cases (1.1.1, 1.2.1) send them.
    """

    # The opening handshake's request and response, which autobahn keeps for the socket's life.
    HANDSHAKE_LEFTOVERS = ("http_headers", "http_request_data", "http_response_data", "http_status_line",
                           "http_request_params", "http_request_uri", "http_request_path", "http_request_host")

    # autobahn queues writes only for sendData(sync=True) or a chopsize, which nothing here
    # asks for; sockets share this empty stand-in instead of a deque each (~0.7 KiB).
    send_queue = ()

    def onOpen(self):
        super().onOpen()
        # Nothing reads these once the socket is open; an idle socket need not carry them.
        for name in self.HANDSHAKE_LEFTOVERS:
            self.__dict__.pop(name, None)
        if not self.__dict__.get("send_queue", True):
            del self.send_queue  # empty: the class's stand-in takes over
        # Daphne reads only request.path after the handshake (for its access log).
        self.request = RequestPath(self.request.path)
        self.application_deferred = None  # fired long ago
        # The upgraded HTTP channel stays registered as the transport's producer (TLS: as
        # the TLS wrapper's), keeping it, its request and its header buffers (~3 KiB)
        # alive until the socket closes.
        transport = self.transport
        if transport is not None and (getattr(transport, "producer", None) or getattr(transport, "_producer", None)):
            transport.unregisterProducer()

    def sendData(self, data, sync=False, chopsize=None):
        if not sync and not chopsize and not self.send_queue and not self.logOctets:
            # autobahn's own path here is transport.write(data) and byte counters that nothing
            # here reads. Twisted's write() buffers, registers the socket for writing and sends
            # on the next loop turn (two epoll_ctl calls); the handshake's 101 and close frames
            # go out at once instead, as broadcasts do (try_write).
            try_write(self.transport, data)
            return
        if (sync or chopsize) and "send_queue" not in self.__dict__:
            self.send_queue = deque()
        super().sendData(data, sync, chopsize)

    def serverClose(self, code=None):
        if code == CLOSE_SERVICE_RESTART:
            # autobahn's sendClose lets an application send only 1000 and 3000-4999; 1012
            # (Service Restart, RFC 6455's registry) is a server's code, so the close frame
            # goes through the lower-level sendCloseFrame, which the handshake then completes.
            return self.sendCloseFrame(code=code, reasonUtf8=b"server restart", isReply=False)
        return super().serverClose(code)

    def handle_reply(self, message):
        if message.get("type") == "websocket.send" and self.state != self.STATE_CONNECTING:
            text, data = message.get("text"), message.get("bytes")
            if text is not None and data is not None:
                raise ValueError(f"Got invalid WebSocket reply message on {message} - contains both bytes and text keys")
            if data is not None:
                return self.serverSend(data, True)
            if text is not None:
                if self._perMessageCompress is None and self.state == self.STATE_OPEN:
                    # Replies (acks, pongs, hello) as broadcasts go: the frame built here and
                    # sent at once when nothing is queued, not buffered for the next loop turn.
                    return try_write(self.transport, text_frame(text.encode()))
                return self.serverSend(text, False)
        return super().handle_reply(message)


class InputQueue:
    """A socket's ASGI input queue: what Daphne needs of asyncio.Queue, in two slots.

    Daphne only calls put_nowait() and hands get() to the application as `receive`; one
    consumer task awaits it at a time. The deque exists only while events wait.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque | None = None
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        """Hand an event to the waiting receive, or keep it for the next one."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(item)
            return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def get(self):
        """Return the next event, waiting for it if none is queued."""
        if self._items:
            item = self._items.popleft()
            if not self._items:
                self._items = None
            return item
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The event arrived as the receive was cancelled: keep it for the next one.
                self._items = deque([waiter.result(), *(self._items or ())])
            raise
        finally:
            if self._waiter is waiter:
                self._waiter = None


def configured_protocol(factory) -> type[ChatWebSocketProtocol]:
    """Return a protocol class holding the factory's options as class attributes.

    autobahn copies each option the instance lacks from the factory into the instance's
    dict on every connection; as class attributes they are found and shared instead.
    """
    options = {name: getattr(factory, name) for name in ChatWebSocketProtocol.CONFIG_ATTRS}
    # A plain function as a class attribute would bind as a method (the compression acceptor).
    options = {name: staticmethod(v) if inspect.isfunction(v) else v for name, v in options.items()}
    # On every connection autobahn's _connectionMade walks CONFIG_ATTRS to copy the options
    # the instance lacks (here none: all are class attributes) and pretty-prints the walk for
    # a debug line, whether or not debug logging is on (~0.1 ms of pformat per handshake).
    # With nothing to copy, an empty list makes the walk and its pformat free, without
    # patching autobahn's module; its debug line then lists no options. autobahn reads
    # CONFIG_ATTRS nowhere else (tests/unit/test_pins.py checks that on each pin).
    options["CONFIG_ATTRS"] = ()
    return type("ConfiguredChatWebSocketProtocol", (ChatWebSocketProtocol,), options)


def deflate_acceptor(max_inflated: int):
    """Accept a client's permessage-deflate offer, bounding each inflated message."""

    def accept(offers):
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                # A compression bomb stops at max_inflated bytes: autobahn then fails the
                # connection instead of inflating it into memory.
                return PerMessageDeflateOfferAccept(offer, max_message_size=max_inflated)
        return None

    return accept


class RawSender:
    """send(payloads, wire): write broadcast frames straight to one socket.

    Without permessage-deflate the ready-made wire bytes (every frame of the event, the same
    bytes for every socket of the room) go out in one write; with it, autobahn compresses
    each payload per connection. A slotted object, not a closure: one per idle socket.
    """

    __slots__ = ("protocol",)

    def __init__(self, protocol: ChatWebSocketProtocol) -> None:
        self.protocol = protocol

    def __call__(self, payloads: list[bytes], wire: bytes) -> None:
        protocol = self.protocol
        # Daphne marks a socket disconnected (connections[protocol]) only in onClose, which
        # autobahn calls after leaving STATE_OPEN (tests/unit/test_pins.py): the state alone
        # says it, without hashing the protocol in Python for each write (~0.5 µs of ~1.5).
        if protocol.state != protocol.STATE_OPEN:
            return
        if protocol._perMessageCompress is None:
            try_write(protocol.transport, wire)
        else:
            for payload in payloads:
                protocol.sendMessage(payload, False)


def try_write(transport, data: bytes) -> None:
    """Send data on a plain TCP transport at once if nothing is queued, like libuv's try_write.

    Twisted's write() buffers and registers the socket for writability (two epoll_ctl calls
    and a loop turn per write); with an empty buffer a direct send() usually takes it all.
    Whatever the kernel does not take goes through write(), behind nothing, so order holds.
    TLS transports are not tcp.Server and always take write().
    """
    if (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # write() below meets the same error and runs Twisted's close path
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


# The collector's thresholds on a worker: Python's own for the young generations, and a full
# collection at most every 100th (not 10th) generation-1 pass. See tune_collector.
GC_THRESHOLDS = (700, 10, 100)


def freeze_startup_objects() -> None:
    """Move what startup made (Django, the app, its modules) out of the collector's reach.

    A full (generation 2) collection walks every tracked object, and a worker holds ~100k
    of them from startup alone: under load those collections stopped a worker for 65-72 ms
    (gc.callbacks, bench fan-out 10 x 50 at 80k deliveries/s), an outlier in every p99.
    Frozen objects are never collected, so startup's garbage is collected first.
    """
    gc.collect()
    gc.freeze()


def tune_collector(thresholds: tuple[int, ...] = GC_THRESHOLDS) -> None:
    """Make full collections rarer: an open socket's objects live as long as it does.

    Each open socket keeps ~73 tracked objects (its protocol, transport, task, coroutines,
    Deferreds, consumer, user and room), and a full collection walks them all: at 5,000
    open sockets one took ~300 ms, and a storm of 4,000 handshakes ran five, a quarter of
    the worker's CPU (gc.callbacks; bench/FINDINGS.md, session 7). Python's third threshold
    asks for a full collection every 10th generation-1 pass, once a quarter more objects
    have reached the old generation since the last one; at 100 the quarter rule still
    bounds how much cyclic garbage waits there, and the young generations are as before.
    """
    gc.set_threshold(*thresholds)


class HttpAccessLog:
    """Daphne's access log without its three lines per WebSocket (connecting, connected, disconnected).

    The chat writes one line per socket when it closes, with the client, room, user, auth
    method, code and how long it was open (chat/realtime/consumer.py); Daphne's three more
    cost ~25 us per handshake (a strftime, a format and a write each). HTTP requests and
    refused upgrades (WSREJECT) are logged by Daphne as before.
    """

    __slots__ = ("inner",)

    SOCKET_LIFE = frozenset({"connecting", "connected", "disconnected"})

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, protocol, action, details) -> None:
        if protocol == "websocket" and action in self.SOCKET_LIFE:
            return
        self.inner(protocol, action, details)


def chat_server_class(*, compression: bool, max_inflated: int, shutdown_grace: float = 10.0,
                      gc_thresholds: tuple[int, ...] = GC_THRESHOLDS, upgrade_first: bool = True) -> type[Server]:
    """Return a Server subclass configured for this deployment."""

    class ChatServer(Server):
        @property
        def http_factory(self):
            return self._http_factory

        @http_factory.setter
        def http_factory(self, factory):
            # Server.run makes Daphne's HTTP factory and listens with it: each connection's
            # first request is read by FirstRequest, and an upgrade skips the HTTP channel.
            self._http_factory = UpgradeFirstFactory(factory, self) if upgrade_first else factory

        def __init__(self, *args, ready_callable=None, action_logger=None, **kwargs):
            if action_logger is not None:
                action_logger = HttpAccessLog(action_logger)

            def ready():
                self.configure_websockets()
                freeze_startup_objects()
                tune_collector(gc_thresholds)
                if ready_callable:
                    ready_callable()

            super().__init__(*args, ready_callable=ready, action_logger=action_logger, **kwargs)
            self.listening_ports = []

        def listen_success(self, port):
            self.listening_ports.append(port)
            return super().listen_success(port)

        def kill_all_applications(self):
            """On SIGTERM (Twisted's "before shutdown"): drain the chat's sockets, then Daphne's own kill."""
            return defer.Deferred.fromFuture(asyncio.ensure_future(self._drain_then_kill()))

        async def _drain_then_kill(self):
            # New connections are refused from now on: a proxy sends them to another worker.
            for port in self.listening_ports:
                port.stopListening()
            from chat.realtime import shutdown  # the app's modules load once Django is set up

            try:
                closed = await asyncio.wait_for(shutdown.drain(shutdown_grace), shutdown_grace)
                logger.info("drained: %d socket(s) closed with 1012", closed)
            except Exception:  # noqa: BLE001 - whatever happens, Daphne's own shutdown follows
                logger.exception("drain failed")
            await Server.kill_all_applications(self).asFuture(asyncio.get_running_loop())
            metrics_setup.process_ended()

        def create_application(self, protocol, scope):
            if scope.get("type") != "websocket":
                return super().create_application(protocol, scope)
            # Daphne's own create_application, with InputQueue for asyncio.Queue and an ASGI
            # scope extension: the chat's local fan-out writes broadcast frames with it,
            # skipping ASGI send, its per-message header checks and a UTF-8 encode.
            assert "application_instance" not in self.connections[protocol]
            scope.setdefault("extensions", {})[RAW_SEND_EXTENSION] = RawSender(protocol)
            scope.setdefault("asgi", {"version": "3.0"})
            input_queue = InputQueue()
            instance = self.application(scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol))
            if protocol not in self.connections:
                return None
            self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
            return input_queue

        def configure_websockets(self):
            """Install the protocol fix, compression and shared options on Daphne's factory."""
            if compression:
                self.ws_factory.setProtocolOptions(perMessageCompressionAccept=deflate_acceptor(max_inflated))
            self.ws_factory.protocol = configured_protocol(self.ws_factory)

    return ChatServer
