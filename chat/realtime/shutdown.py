"""Draining a worker that is told to stop (protocol section 9).

The server adapter (chatproject/daphne_adapter.py) stops accepting connections on SIGTERM
and calls drain(): every open room socket answers what it has already read (acks once its
messages commit; `unavailable` for messages read from now on, which it will not store),
then closes with 1012, so clients reconnect at once to another worker instead of waiting
out a backoff after a dropped connection.
"""

import asyncio
import logging

from chat.protocol.codes import CLOSE_SERVICE_RESTART
from chat.realtime.authority import get_socket_index

log = logging.getLogger(__name__)

# Of the grace period, what is kept for the close handshakes after the last answer.
CLOSE_MARGIN_SECONDS = 1.0


async def drain(grace: float) -> int:
    """Answer, then close every open room socket with 1012 within grace seconds; return how many closed."""
    sockets = list(get_socket_index().sockets())
    if not sockets:
        return 0
    log.info("draining %d socket(s) within %.1f s", len(sockets), grace)
    for socket in sockets:
        socket.stop_storing()
    answered = asyncio.gather(*(socket.answered() for socket in sockets), return_exceptions=True)
    try:
        await asyncio.wait_for(answered, max(0.0, grace - CLOSE_MARGIN_SECONDS))
    except TimeoutError:
        log.warning("drain: some answers not ready within the grace period; closing anyway")
    # All at once, not one after another: each end leaves presence (a Redis round trip), and a
    # worker with thousands of sockets would otherwise send its last 1012 seconds after its first.
    ended = await asyncio.gather(*(socket.end(CLOSE_SERVICE_RESTART, "server restart") for socket in sockets),
                                 return_exceptions=True)
    for failure in (e for e in ended if isinstance(e, BaseException)):
        log.error("drain: closing a socket failed", exc_info=failure)  # the others closed all the same
    return len(sockets)
