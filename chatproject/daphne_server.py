"""Daphne's Server with what it lacks: permessage-deflate, and empty frames sent as sent."""

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import tcp
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from chat.fanout import RAW_SEND_EXTENSION


class ChatWebSocketProtocol(WebSocketProtocol):
    """Daphne's protocol, but an empty text or bytes frame is sent rather than dropped.

    Daphne tests `if message.get("text")`, so `""` and `b""` vanish; RFC 6455 allows empty
    frames and the Autobahn echo cases (1.1.1, 1.2.1) send them.
    """

    def handle_reply(self, message):
        if message.get("type") == "websocket.send" and self.state != self.STATE_CONNECTING:
            text, data = message.get("text"), message.get("bytes")
            if text is not None and data is not None:
                raise ValueError(f"Got invalid WebSocket reply message on {message} - contains both bytes and text keys")
            if data is not None:
                return self.serverSend(data, True)
            if text is not None:
                return self.serverSend(text, False)
        return super().handle_reply(message)


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


def raw_sender(server: Server, protocol: ChatWebSocketProtocol):
    """Return send(payload, frame) that writes a broadcast straight to this socket.

    Without permessage-deflate the ready-made wire frame is written as is (the same bytes
    for every socket of the room); with it, autobahn compresses per connection.
    """

    def send(payload: bytes, frame: bytes) -> None:
        if protocol.state != protocol.STATE_OPEN or server.connections.get(protocol, {}).get("disconnected"):
            return
        if protocol._perMessageCompress is None:
            try_write(protocol.transport, frame)
        else:
            protocol.sendMessage(payload, False)

    return send


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


def chat_server_class(*, compression: bool, max_inflated: int) -> type[Server]:
    """Return a Server subclass configured for this deployment."""

    class ChatServer(Server):
        def __init__(self, *args, ready_callable=None, **kwargs):
            def ready():
                self.configure_websockets()
                if ready_callable:
                    ready_callable()

            super().__init__(*args, ready_callable=ready, **kwargs)

        def create_application(self, protocol, scope):
            # An ASGI scope extension: the chat's local fan-out writes broadcast frames with
            # it, skipping ASGI send, its per-message header checks and a UTF-8 encode.
            if scope.get("type") == "websocket":
                scope.setdefault("extensions", {})[RAW_SEND_EXTENSION] = raw_sender(self, protocol)
            return super().create_application(protocol, scope)

        def configure_websockets(self):
            """Install the protocol fix and compression on the factory Daphne just built."""
            self.ws_factory.protocol = ChatWebSocketProtocol
            if compression:
                self.ws_factory.setProtocolOptions(perMessageCompressionAccept=deflate_acceptor(max_inflated))

    return ChatServer
