"""Raw WebSocket bytes for tests that drive a protocol object over a fake transport (no network)."""

import base64
import os


def handshake_request(path: bytes = b"/ws/rooms/lobby/?a=1", extensions: bytes | None = None) -> bytes:
    """A client's opening handshake for path, offering extensions when given."""
    key = base64.b64encode(os.urandom(16))
    request = (b"GET " + path + b" HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n")
    if extensions:
        request += b"Sec-WebSocket-Extensions: " + extensions + b"\r\n"
    return request + b"\r\n"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final frame of under 126 bytes, as a client sends it."""
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of unmasked server frames of under 126 bytes; a leading 101 response is skipped."""
    if data.startswith(b"HTTP/"):
        data = data.partition(b"\r\n\r\n")[2]
    frames = []
    while data:
        assert data[1] < 126, "frame too long for this test's parser"
        frames.append((data[0] & 0x0F, data[2:2 + data[1]]))
        data = data[2 + data[1]:]
    return frames
