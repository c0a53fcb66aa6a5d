"""Bytes on the wire for broadcasts, and the ASGI extension that writes them straight to a socket.

The hub encodes each room event once per process as RFC 6455 frames; our Daphne adapter
(chatproject/daphne_adapter.py) offers the extension that writes them without ASGI send.
"""

import struct

# The ASGI scope extension our Daphne adapter (chatproject/daphne_adapter.py) provides: a
# function(payload, frame) that writes a pre-encoded text frame straight to the socket.
RAW_SEND_EXTENSION = "chat.raw_send"


def text_frame(payload: bytes) -> bytes:
    """Return an unmasked, unfragmented RFC 6455 text frame carrying payload (server to client)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
