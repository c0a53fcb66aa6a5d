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
    for socket in sockets:
        try:
            await socket.end(CLOSE_SERVICE_RESTART, "server restart")
        except Exception:  # noqa: BLE001 - one socket's failure must not keep the others open
            log.exception("drain: closing a socket failed")
    return len(sockets)
