"""A connection's first request, read once: a WebSocket upgrade goes straight to autobahn.

Stock Daphne reads every request with Twisted's HTTP channel, line by line into a Request,
and for an upgrade then writes the request out again as bytes for autobahn to parse a
second time. The Request, the channel and their headers (~17 tracked objects) then form a
cycle that lives on until a full garbage collection, a second or more after the socket
opened (bench/FINDINGS.md, session 7).

FirstRequest stands in front of Daphne's HTTP channel for the first request of each
connection. When the request head is a plain WebSocket upgrade that Daphne would pass on
(the checks of daphne.http_protocol.WebRequest.process, done here on the raw head), the
bytes go to Daphne's WebSocket protocol exactly as they came. Anything else (another
method or version, a body, folded or odd header lines, a head over 16 KiB, a head that has
not arrived after HEAD_TIMEOUT) goes to Daphne's own HTTP channel with every byte read so
far, and from then on the connection is Daphne's as before.
"""

from __future__ import annotations

import logging

from daphne.utils import HEADER_NAME_RE, INVALID_HEADER_VALUE_BYTES
from twisted.internet import protocol as twisted_protocol
from twisted.protocols.policies import ProtocolWrapper

logger = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # Twisted's HTTPChannel allows 16 KiB of headers in all
HEAD_TIMEOUT = 10.0  # seconds; then Daphne's HTTP channel (and its own timeouts) take over
# Headers after which the request is not a bare upgrade: Daphne's channel reads a body.
BODY_HEADERS = (b"content-length", b"transfer-encoding")


def websocket_upgrade(head: bytes) -> bytes | None:
    """Return the raw query string if head (up to, not including, the blank line) is an upgrade to hand on.

    None when anything about it asks for Daphne's HTTP channel instead: the channel then
    answers what it always answered (a 400 for a bad header, an HTTP response, an upgrade).
    """
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target, _, version = rest.partition(b" ")
    if (method != b"GET" or version != b"HTTP/1.1" or not target.startswith(b"/") or not target.isascii()
            or b"\r" in target or b"\n" in target):
        return None
    upgrade = None
    for line in lines[1:]:
        if b"\r" in line or b"\n" in line:
            return None  # a bare CR or LF: Twisted's channel reads lines its own way
        name, colon, value = line.partition(b":")
        if not colon or not HEADER_NAME_RE.fullmatch(name) or INVALID_HEADER_VALUE_BYTES.intersection(value):
            return None  # also a folded line (it starts with a space): not a token
        lower = name.lower()
        if lower in BODY_HEADERS and value.strip() != b"0":
            return None
        if lower == b"upgrade" and upgrade is None:
            upgrade = value.strip()  # Daphne reads the first Upgrade header
    if upgrade is None or upgrade.lower() != b"websocket":
        return None
    return target.partition(b"?")[2]


class FirstRequest(twisted_protocol.Protocol):
    """Read the first request head of a connection; give it to the WebSocket or the HTTP protocol."""

    factory: UpgradeFirstFactory  # set by the factory: the server, Daphne's HTTP factory and the clock

    def __init__(self, addr) -> None:
        self.addr = addr
        self.buffer = b""
        self.timer = None

    def connectionMade(self) -> None:
        self.timer = self.factory.clock.callLater(HEAD_TIMEOUT, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD or not (buffer[:4] == b"GET "[: len(buffer)]):
                return self._to_http(buffer)
            self.buffer = buffer
            return
        query = websocket_upgrade(buffer[:end]) if end <= MAX_HEAD else None
        if query is None:
            return self._to_http(buffer)
        self._to_websocket(buffer, query)

    def connectionLost(self, reason=twisted_protocol.connectionDone) -> None:
        self._stop_timer()

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is not None:
            self._to_http(self.buffer)

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _hand_over(self, protocol) -> None:
        """Make protocol the transport's protocol (inside TLS: the TLS wrapper's) from now on."""
        self._stop_timer()
        transport, self.transport = self.transport, None
        self.buffer = b""
        if isinstance(transport, ProtocolWrapper):
            transport.wrappedProtocol = protocol
        else:
            transport.protocol = protocol
        protocol.makeConnection(transport)

    def _to_http(self, buffer: bytes) -> None:
        channel = self.factory.http_factory.buildProtocol(self.addr)
        self._hand_over(channel)
        if buffer:
            channel.dataReceived(buffer)

    def _to_websocket(self, buffer: bytes, query: bytes) -> None:
        # What Daphne's WebRequest.process does for an upgrade, without the Request.
        transport = self.transport
        protocol = self.factory.server.ws_factory.buildProtocol(transport.getPeer())
        if protocol is None:
            logger.warning("Could not make WebSocket protocol")
            return self._to_http(buffer)
        protocol._raw_query_string = query  # Daphne's WebSocketProtocol puts it in the scope
        self._hand_over(protocol)
        protocol.dataReceived(buffer)


class UpgradeFirstFactory:
    """Daphne's HTTP factory, building a FirstRequest in front of each of its channels.

    Everything else (starting, stopping, ALPN's acceptableProtocols, the access log's
    helpers) is the HTTP factory's own.
    """

    def __init__(self, http_factory, server, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # the running one (asyncio's, under Daphne)
        self.http_factory = http_factory
        self.server = server
        self.clock = clock

    def buildProtocol(self, addr):
        first = FirstRequest(addr)
        first.factory = self
        return first

    def __getattr__(self, name):
        return getattr(self.http_factory, name)
