"""A socket's replies in frame order, and the back-pressure that bounds its messages in flight.

A message is answered (ack or error) once its batch commits, while the socket reads on;
a reply to a later frame (a pong, a history page) must not overtake that answer. So
replies queue here behind the answers still due, and go out in the order their frames
came. A socket with PIPELINE_MAX messages waiting stops reading until one is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from django.db import DatabaseError

from chat import metrics
from chat.protocol import outbound
from chat.protocol.errors import ChatError

log = logging.getLogger(__name__)

# Messages one socket may have waiting to be stored before it stops reading its frames.
PIPELINE_MAX = 32


def error_frame(exc: BaseException, *, client_id: str | None, room: str | None) -> outbound.Frame:
    """Return the error frame that answers a frame which raised exc (a refusal, or a failure behind it)."""
    if isinstance(exc, ChatError):
        metrics.error(exc.code)
        return outbound.error(code=exc.code, detail=exc.detail, client_id=exc.client_id or client_id)
    metrics.error("unavailable")
    if isinstance(exc, DatabaseError):
        log.error("database error in room=%s", room, exc_info=exc)
        return outbound.error(code="unavailable", detail="the database is unavailable; nothing was stored",
                              client_id=client_id)
    # A bug or a backing service down (the rate limiter's Redis) must not cost the client
    # its connection; the error names the client_id, so the client sends it again.
    log.error("frame failed in room=%s", room, exc_info=exc)
    return outbound.error(code="unavailable", detail="the server failed to handle this frame; nothing was stored",
                          client_id=client_id)


class ReplyChain:
    """Replies of one socket, in frame order: ready frames, and answers to messages being stored."""

    __slots__ = ("send", "close_gone", "room", "_items", "_task", "_space", "_idle")

    def __init__(self, send: Callable[[str], Awaitable[None]], close_gone: Callable[[], Awaitable[None]],
                 room: str) -> None:
        self.send = send  # writes one encoded text frame
        self.close_gone = close_gone  # closes the socket when its room was deleted under it
        self.room = room
        # (stored-message future, client_id) or a ready frame
        self._items: deque[tuple[asyncio.Future, str | None] | outbound.Frame] = deque()
        self._task: asyncio.Task | None = None
        self._space: asyncio.Future | None = None
        self._idle: asyncio.Future | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def frame(self, frame: outbound.Frame) -> None:
        """Send a frame now, or behind the answers still due."""
        if self._items:
            self._items.append(frame)
            return
        await self.send(outbound.encode(frame))
        metrics.frame_out(frame["type"])

    async def wait_for_space(self) -> None:
        """Return once fewer than PIPELINE_MAX messages of this socket wait for their answer."""
        while len(self._items) >= PIPELINE_MAX:
            self._space = asyncio.get_running_loop().create_future()
            await self._space

    async def sent(self) -> None:
        """Return once every queued reply has been sent."""
        while self._items:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def answer(self, stored: asyncio.Future, client_id: str | None) -> None:
        """Queue the answer to a message: its ack once stored, or its error."""
        self._items.append((stored, client_id))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._items:
            entry = self._items[0]
            close = False
            frame = entry if isinstance(entry, dict) else None
            if frame is None:
                frame, close = await self._answer_frame(*entry)
            try:
                await self.send(outbound.encode(frame))
                metrics.frame_out(frame["type"])
                if close:
                    await self.close_gone()
            except Exception:  # noqa: BLE001 - the socket went away; later replies still pop
                log.exception("reply not sent room=%s", self.room)
            finally:
                # Popped only once sent, so a frame queued meanwhile cannot overtake it.
                self._items.popleft()
                for waiter in (self._space, self._idle):
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

    async def _answer_frame(self, stored: asyncio.Future, client_id: str | None) -> tuple[outbound.Frame, bool]:
        """Return the frame answering a stored message, and whether the socket must then close."""
        try:
            message, _created = await stored
        except ChatError as exc:
            if exc.code == "not_found":
                # The room was deleted under this socket: say so, then close as for a missing room.
                return outbound.error(code="forbidden", detail="this room no longer exists; nothing was stored",
                                      client_id=client_id), True
            return error_frame(exc, client_id=client_id, room=self.room), False
        except Exception as exc:  # noqa: BLE001 - becomes the message's error frame
            return error_frame(exc, client_id=client_id, room=self.room), False
        return outbound.ack(client_id=client_id, message_id=message["id"], seq=message["seq"]), False
