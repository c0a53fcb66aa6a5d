"""The room socket, a transport: decode a frame, call an action or a selector, write the answer.

What a socket needs beyond that is held in objects of its own: the reply order and
back-pressure (replies.ReplyChain), the upload header waiting for its bytes
(upload_assembly.UploadAssembly), and room events written straight from the process's
hub (hub.Hub calls deliver).
"""

import asyncio
import logging
import time
import uuid
from collections import deque

from channels.db import database_sync_to_async
from django.conf import settings

from chat import metrics
from chat.actions import read_state
from chat.actions.messages import message_change, message_post
from chat.actions.presence import presence_announce
from chat.actions.typing import typing_relay
from chat.domain import selectors
from chat.presence import get_presence_store
from chat.presence.runner import ensure_heartbeat
from chat.protocol import codes, inbound, outbound
from chat.protocol.errors import ChatError
from chat.realtime import handshake
from chat.realtime.authority import get_socket_index
from chat.realtime.hub import Delivery, get_hub
from chat.realtime.lean import LeanConsumer
from chat.realtime.replies import ReplyChain, error_frame
from chat.realtime.upload_assembly import UploadAssembly
from chat.realtime.wire import RAW_SEND_EXTENSION
from chat.store import loop_reads
from chat.store.connection import read_reconnecting_once

log = logging.getLogger(__name__)


class RoomConsumer(LeanConsumer):
    """One client's socket to one room (protocol sections 2 to 11)."""

    room = None
    user_obj: outbound.User | None = None
    user_id: int | None = None
    # Per-socket state starts as these class defaults, so an idle socket's instance dict
    # holds only what it changed (thousands of idle sockets per process).
    _ready = False
    _replies: ReplyChain | None = None  # made on the first message
    _uploads: UploadAssembly | None = None  # made on the first upload header
    _outbox: deque[str] | None = None  # only for servers without the raw send
    _drainer: asyncio.Task | None = None
    typing_relayed_at = float("-inf")
    typing_on = False
    _storing = True  # off while the worker drains: what is read from then on is not stored
    _joined = True  # off once the user leaves the (public) room; posting joins it again
    _opened: tuple[float, str | None, str] | None = None  # when hello went, how the socket authenticated, the room

    # -- opening and closing -----------------------------------------------------

    async def connect(self):
        self.connection_id = uuid.uuid4().hex
        # Room events that arrive before hello is sent wait here: hello is the first frame.
        self._backlog: list[tuple[Delivery, int | None]] | None = []
        self._raw_send = self.scope.get("extensions", {}).get(RAW_SEND_EXTENSION)
        slug = self.scope["url_route"]["kwargs"]["slug"]
        credentials = handshake.credentials_from_scope(self.scope)
        # Accept first: close codes 4401/4403/4404 only reach a client after the handshake.
        await self.accept()
        if not credentials:
            log.info("ws close 4401 room=%s: no credentials", slug)
            return await self._refuse(codes.CLOSE_NOT_AUTHENTICATED)
        after_error = None
        try:
            after, since = inbound.parse_recovery(self.scope.get("query_string", b""))
        except ChatError as exc:
            after, since, after_error = None, None, exc
        # Subscribe first, then snapshot: a message committed in between reaches the client
        # twice at worst, and clients drop duplicates by seq. The hub is joined before the
        # credentials are known to be good, so the handshake makes one database trip.
        hub = get_hub()
        await hub.join(slug, self)
        with metrics.timed(metrics.HANDSHAKE_DB_SECONDS):
            opening = loop_reads.run(selectors.room_socket_open, slug=slug, credentials=credentials, after=after,
                                     since=since)
            if opening is None:
                opening = await database_sync_to_async(read_reconnecting_once)(
                    selectors.room_socket_open, slug=slug, credentials=credentials, after=after, since=since)
                metrics.handshake_read("thread")
            else:
                metrics.handshake_read("loop")
        identity = opening.identity
        user, room = identity.user, opening.room
        if room is None or not opening.allowed:
            await hub.leave(slug, self)
            code = (codes.CLOSE_NOT_AUTHENTICATED if not user.is_authenticated
                    else codes.CLOSE_NOT_FOUND if room is None else codes.CLOSE_FORBIDDEN)
            log.info("ws close %s room=%s user=%s", code, slug, user.pk)
            return await self._refuse(code)
        self.user_id, self.room, self.user = user.pk, room, user
        self.user_obj = outbound.user_obj(user_id=user.pk, username=user.get_username())
        ensure_heartbeat()
        # A presence frame that came before the store join describes a change the join's
        # `online` (sent in hello) already includes; after hello it would be stale.
        self._backlog = [item for item in self._backlog if not outbound.is_presence_text(item[0].texts[0])]
        change = await get_presence_store().join(room=room.slug, user=self.user_obj, connection=self.connection_id,
                                                 max_connections=settings.CHAT_MAX_CONNECTIONS_PER_USER)
        if change.refused:
            await hub.leave(room.slug, self)
            self.room = None
            log.warning("ws close 4429 room=%s user=%s: connection cap reached", room.slug, user.pk)
            return await self._refuse(codes.CLOSE_TOO_MANY_CONNECTIONS)
        messages, last_seq, last_version, truncated = opening.snapshot
        await self.send_frame(outbound.hello(
            user=self.user_obj, room=outbound.room_obj(slug=room.slug, name=room.name, private=room.private),
            online=change.online, messages=messages, last_seq=last_seq, last_version=last_version,
            truncated=truncated, last_read=opening.last_read))
        self._ready = True
        metrics.child(metrics.HANDSHAKES, "hello").inc()
        metrics.child(metrics.SOCKETS_OPEN, "room").inc()
        get_socket_index().add(self, identity=identity, room=room.slug)
        backlog, self._backlog = self._backlog, None  # not used once ready
        for delivery, skip_user in backlog:
            if skip_user != self.user_id:
                self.deliver(delivery)
        if after_error is not None:
            await self.send_error(after_error)
        if change.changed:
            # The user's own sockets learn the list from hello: a join is their first socket.
            await presence_announce(room=room.slug, change=change, skip_user=self.user_id)
        if opening.joined_now:  # it appears on the user's sidebars
            newest = messages[-1] if messages and messages[-1]["seq"] == last_seq else None
            await read_state.room_joined(room=room, user=user, newest=newest)
        self._opened = (time.monotonic(), identity.how, room.slug)
        log.debug("ws open room=%s user=%s auth=%s", room.slug, user.pk, identity.how)

    async def disconnect(self, code):
        if self._uploads is not None:
            self._uploads.take()
        await self._leave_room()
        if self._opened is not None:
            # One line per socket that reached hello, when it ends (refusals log their own):
            # a line costs ~20 us, a fifth of the handshake's own work over stock Daphne's.
            opened_at, how, room = self._opened
            client = self.scope.get("client") or ("-",)
            log.info("ws closed client=%s room=%s user=%s auth=%s code=%s open=%.1fs", client[0], room, self.user_id,
                     how, code, time.monotonic() - opened_at)

    async def end(self, code: int, reason: str) -> None:
        """Close because what let this socket in has ended (protocol section 8): nothing of the room follows."""
        room = self.room.slug if self.room is not None else None
        await self._leave_room()
        log.info("ws end room=%s user=%s code=%s: %s", room, self.user_id, code, reason)
        await self.close(code=code)

    async def _leave_room(self) -> None:
        """Stop hearing the room and reading frames for it; leave presence (once)."""
        room, self.room = self.room, None
        if room is None:
            return
        if self._ready:
            metrics.child(metrics.SOCKETS_OPEN, "room").dec()
        self._ready = False  # and deliveries are dropped, not backlogged
        self._backlog = None
        get_socket_index().remove(self)
        await get_hub().leave(room.slug, self)
        change = await get_presence_store().leave(room=room.slug, user=self.user_obj, connection=self.connection_id)
        if change.changed:
            await presence_announce(room=room.slug, change=change, skip_user=self.user_id)

    @property
    def room_slug(self) -> str | None:
        return self.room.slug if self.room is not None else None

    # -- frames from the client --------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.room is None:
            return
        frame = None
        try:
            if bytes_data is not None:
                metrics.frame_in("binary")
                upload = self._upload_assembly().binary_frame_came(bytes_data)
                if upload is not None:
                    await self._post(body=upload.header.body, client_id=upload.header.client_id, attachment=upload)
                return
            if self._uploads is not None:
                abandoned = self._uploads.text_frame_came()
                if abandoned is not None:
                    await self.send_error(abandoned)
            frame = inbound.decode(text_data)
            metrics.frame_in(frame["type"])
            await getattr(self, "frame_" + frame["type"])(frame)
        except Exception as exc:  # noqa: BLE001 - every failure is an error frame, never a lost connection
            client_id = frame.get("client_id") if isinstance(frame, dict) else None
            await self.send_frame(error_frame(exc, client_id=client_id if isinstance(client_id, str) else None,
                                              room=self.room.slug))

    async def frame_message(self, frame):
        body, client_id = inbound.check_message(frame)
        await self._post(body=body, client_id=client_id)

    async def frame_edit(self, frame):
        message_id, body, client_id = inbound.check_edit(frame)
        await self._change(message_id=message_id, body=body, client_id=client_id)

    async def frame_delete(self, frame):
        message_id, client_id = inbound.check_delete(frame)
        await self._change(message_id=message_id, body=None, client_id=client_id)

    async def _change(self, *, message_id, body, client_id):
        self._refuse_while_draining(client_id)
        changed = await message_change(room=self.room, user=self.user, message_id=message_id, body=body,
                                       client_id=client_id)
        await self.send_frame(outbound.ack(client_id=client_id, message_id=changed["id"], seq=changed["seq"]))

    async def frame_read(self, frame):
        await read_state.read_advance(room=self.room, user=self.user, seq=inbound.check_read(frame))

    async def frame_upload(self, frame):
        self._upload_assembly().header(frame)

    async def frame_typing(self, frame):
        active = inbound.check_bool(frame, "active")
        now = time.monotonic()
        if active:
            if now - self.typing_relayed_at < settings.CHAT_TYPING_MIN_INTERVAL:
                return
            self.typing_relayed_at = now
        elif not self.typing_on:
            return
        self.typing_on = active
        await typing_relay(room=self.room.slug, user=self.user_obj, active=active)

    async def frame_history(self, frame):
        before, limit = inbound.check_history(frame)
        messages, has_more = await database_sync_to_async(selectors.message_list_before)(
            room=self.room, before=before, limit=limit)
        await self.send_frame(outbound.history(messages=messages, has_more=has_more))

    async def frame_ping(self, frame):
        await self.send_frame(outbound.pong(ts=inbound.check_ping(frame)))

    def stop_storing(self) -> None:
        """The worker is draining: messages read from now on are answered `unavailable`, not stored."""
        self._storing = False

    async def answered(self) -> None:
        """Return once every message already read has its answer sent."""
        if self._replies is not None:
            await self._replies.sent()

    def _refuse_while_draining(self, client_id: str | None) -> None:
        if not self._storing:
            raise ChatError("unavailable", "the server is restarting; nothing was stored or changed (send it again "
                            "after reconnecting)", client_id=client_id)

    async def _post(self, *, body, client_id, attachment=None):
        self._refuse_while_draining(client_id)
        if not self._joined:  # posting in a public room the user left joins it again
            self._joined = True
            await read_state.room_join(room=self.room, user=self.user)
        # Pipelined: the message joins the process's next batch and the socket reads its
        # next frame meanwhile; the ack, or the error, goes out in frame order.
        replies = self._reply_chain()
        await replies.wait_for_space()
        replies.answer(await message_post(room=self.room, user=self.user, body=body, client_id=client_id,
                                          attachment=attachment), client_id)

    # -- events from the room, via the hub ---------------------------------------

    def deliver(self, delivery: Delivery, skip_user: int | None = None) -> None:
        """Write a room event the hub encoded once for every local socket of the room."""
        if not self._ready:
            if self._backlog is None:
                return  # ended: nothing of the room follows the close
            # Before hello; the user may not be known yet, so the skip is checked on flush.
            self._backlog.append((delivery, skip_user))
        elif self._raw_send is not None:
            self._raw_send(delivery.payloads, delivery.wire)
        else:
            # Servers without our Daphne extension (the test communicator): ASGI send, in
            # order, from one task.
            if self._outbox is None:
                self._outbox = deque()
            self._outbox.extend(delivery.texts)
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.ensure_future(self._drain_outbox())

    def user_state(self, kind: str, state: dict) -> None:
        """Pass on the user's cursor moves (in any room, from any tab); note leaving this room."""
        if kind == "read":
            self.deliver(Delivery([outbound.encode(outbound.room_state_frame(state))]))
        elif kind == "left" and state["slug"] == self.room_slug:
            self._joined = False

    async def _drain_outbox(self) -> None:
        while self._outbox:
            await self.send(text_data=self._outbox.popleft())

    # -- helpers -----------------------------------------------------------------

    async def send_frame(self, frame: outbound.Frame):
        """Send a reply in frame order: behind the answers still due for earlier messages."""
        if self._replies is not None:
            await self._replies.frame(frame)
        else:
            await self.send(text_data=outbound.encode(frame))
            metrics.frame_out(frame["type"])

    async def send_error(self, exc: ChatError):
        metrics.error(exc.code)
        await self.send_frame(outbound.error(code=exc.code, detail=exc.detail, client_id=exc.client_id))

    async def _refuse(self, code: int) -> None:
        metrics.child(metrics.HANDSHAKES, str(code)).inc()
        await self.close(code=code)

    def _reply_chain(self) -> ReplyChain:
        if self._replies is None:
            self._replies = ReplyChain(self._send_text, self._close_room_gone, room=self.room.slug)
        return self._replies

    def _upload_assembly(self) -> UploadAssembly:
        if self._uploads is None:
            self._uploads = UploadAssembly(on_expired=self.send_error)
        return self._uploads

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def _close_room_gone(self) -> None:
        await self.close(code=codes.CLOSE_NOT_FOUND)
