"""Pairing an `upload` header with the binary frame that must follow it (protocol section 3)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from django.conf import settings

from chat.domain import uploads
from chat.protocol import inbound
from chat.protocol.errors import ChatError


class UploadAssembly:
    """One socket's upload state: no header, a header waiting for its bytes, or a refused header's bytes to drop."""

    __slots__ = ("pending", "timer", "discard_next", "on_expired")

    def __init__(self, on_expired: Callable[[ChatError], Awaitable[None]]) -> None:
        self.pending: inbound.UploadHeader | None = None
        self.timer: asyncio.TimerHandle | None = None
        # Set when a header was refused: its bytes, if they follow, are dropped quietly.
        self.discard_next = False
        self.on_expired = on_expired

    def header(self, frame: dict) -> None:
        """Accept an upload header, or raise its refusal (and drop the bytes that may follow)."""
        try:
            header = inbound.check_upload(frame)
        except ChatError:
            self.discard_next = True
            raise
        self.pending = header
        self.timer = asyncio.get_running_loop().call_later(
            settings.CHAT_UPLOAD_TIMEOUT, lambda: asyncio.ensure_future(self._expire(header)))

    def text_frame_came(self) -> ChatError | None:
        """A text frame arrived: return the error for a header it abandons; refused bytes no longer follow."""
        self.discard_next = False
        abandoned = self.take()
        if abandoned is None:
            return None
        return ChatError("bad_request", "the upload's binary frame must come next; nothing stored",
                         client_id=abandoned.client_id)

    def binary_frame_came(self, data: bytes) -> uploads.UploadedFile | None:
        """Pair the bytes with the pending header; None when they belong to a refused header."""
        header = self.take()
        if header is None:
            if self.discard_next:
                self.discard_next = False
                return None
            raise ChatError("bad_request", "binary frame with no upload pending; the bytes were discarded")
        return uploads.upload_complete(header, data)

    def take(self) -> inbound.UploadHeader | None:
        """Remove and return the pending header, if any, and stop its timer."""
        header, self.pending = self.pending, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return header

    async def _expire(self, header: inbound.UploadHeader) -> None:
        if self.pending is header:
            self.take()
            await self.on_expired(ChatError("bad_request", "the upload's bytes never came; nothing stored",
                                            client_id=header.client_id))
