"""The room socket: decode frames, check the scope, call services, relay room events."""

import asyncio
import logging
import time
import uuid
from collections import deque

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from chat import auth, broadcast, events, frames, selectors, services, uploads
from chat.errors import ChatError
from chat.fanout import RAW_SEND_EXTENSION, Delivery, get_hub
from chat.presence import get_presence_store
from chat.presence.runner import ensure_heartbeat
from chat.ratelimit import get_rate_limiter
from chat.writer import get_writer

log = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429
# Messages one socket may have waiting to be stored before it stops reading its frames.
PIPELINE_MAX = 32


class RoomConsumer(AsyncWebsocketConsumer):
    """One client's socket to one room (protocol sections 2 to 7)."""

    # Room events reach sockets through the process's hub (chat/fanout.py), so a socket
    # needs no channel-layer channel of its own (no subscription, no receive loop).
    channel_layer_alias = None
    room = None
    user_obj: events.User | None = None
    user_id: int | None = None
    # An accepted `upload` header waiting for its binary frame, and its expiry timer.
    pending_upload: uploads.UploadHeader | None = None
    upload_timer: asyncio.TimerHandle | None = None
    # Set when an upload header was refused: its bytes, if they follow, are dropped quietly.
    discard_next_binary = False
    # Per-socket state starts as these class defaults, so an idle socket's instance dict
    # holds only what it changed (thousands of idle sockets per process).
    _ready = False
    _outbox: deque[str] | None = None  # only for servers without the raw send
    _drainer: asyncio.Task | None = None
    _replier: asyncio.Task | None = None
    # Replies in frame order, (stored-message future, client_id) or a ready frame; a deque
    # once a message is in flight (most sockets never send one).
    _replies: deque[tuple[asyncio.Future, str | None] | events.Frame] | tuple = ()
    _space: asyncio.Future | None = None  # resolved when the reply chain shrinks
    typing_relayed_at = float("-inf")
    typing_on = False

    async def __call__(self, scope, receive, send):
        # With no channel-layer channel the socket has one input, so events are awaited
        # directly: Channels' await_many_dispatch spends a Task and an asyncio.wait on each.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def connect(self):
        self.connection_id = uuid.uuid4().hex
        # Room events that arrive before hello is sent wait here: hello is the first frame.
        self._backlog: list[tuple[Delivery, int | None]] | None = []
        self._raw_send = self.scope.get("extensions", {}).get(RAW_SEND_EXTENSION)
        slug = self.scope["url_route"]["kwargs"]["slug"]
        credentials = auth.credentials_from_scope(self.scope)
        # Accept first: close codes 4401/4403/4404 only reach a client after the handshake.
        await self.accept()
        if not credentials:
            log.info("ws close 4401 room=%s: no credentials", slug)
            return await self.close(code=CLOSE_NOT_AUTHENTICATED)
        after_error = None
        try:
            after = frames.parse_after(self.scope.get("query_string", b""))
        except ChatError as exc:
            after, after_error = None, exc
        # Subscribe first, then snapshot: a message committed in between reaches the
        # client twice at worst, and clients drop duplicates by seq. Authentication, the
        # room lookup, the access check and the snapshot share one trip to the database
        # thread, so the hub is joined before the credentials are known to be good.
        hub = get_hub()
        await hub.join(slug, self)
        user, how, room, allowed, snapshot = await database_sync_to_async(self._open_room_reconnecting)(
            slug=slug, credentials=credentials, after=after
        )
        if room is None or not allowed:
            await hub.leave(slug, self)
            code = (CLOSE_NOT_AUTHENTICATED if not user.is_authenticated
                    else CLOSE_NOT_FOUND if room is None else CLOSE_FORBIDDEN)
            log.info("ws close %s room=%s user=%s", code, slug, user.pk)
            return await self.close(code=code)
        self.user_id = user.pk
        self.room = room
        self.user = user
        self.user_obj = events.user_obj(user_id=user.pk, username=user.get_username())
        ensure_heartbeat()
        # A presence frame that came before the store join describes a change the join's
        # `online` (sent in hello) already includes; after hello it would be stale.
        self._backlog = [item for item in self._backlog if not events.is_presence_text(item[0].texts[0])]
        change = await get_presence_store().join(
            room=room.slug,
            user=self.user_obj,
            connection=self.connection_id,
            max_connections=settings.CHAT_MAX_CONNECTIONS_PER_USER,
        )
        if change.refused:
            await get_hub().leave(room.slug, self)
            self.room = None
            log.warning("ws close 4429 room=%s user=%s: connection cap reached", room.slug, user.pk)
            return await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
        messages, last_seq, truncated = snapshot
        await self.send_frame(
            events.hello(
                user=self.user_obj,
                room=events.room_obj(slug=room.slug, name=room.name, private=room.private),
                online=change.online,
                messages=messages,
                last_seq=last_seq,
                truncated=truncated,
            )
        )
        self._ready = True
        backlog, self._backlog = self._backlog, None  # not used once ready
        for delivery, skip_user in backlog:
            if skip_user != self.user_id:
                self.deliver(delivery)
        if after_error is not None:
            await self.send_error(after_error)
        if change.changed:
            await self._broadcast_presence(change)
        log.info("ws open room=%s user=%s auth=%s", room.slug, user.pk, how)

    def _open_room_reconnecting(self, **kwargs):
        """Run _open_room; on a connection the database dropped (a restart), reconnect and run it once more.

        Reused connections are not checked before use (DATABASE_HEALTH_CHECKS is off), so
        the first statement after a database restart fails. The handshake only reads, so a
        second try is safe and spares the client a 1011 and a backoff.
        """
        try:
            return self._open_room(**kwargs)
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block:
                raise
            log.warning("database connection lost during a handshake; reconnecting once")
            connection.close()
            return self._open_room(**kwargs)

    def _open_room(self, *, slug, credentials, after):
        """Return (user, how, room, allowed, snapshot); room and snapshot only as far as allowed."""
        user, how = auth.authenticate(credentials)
        if not user.is_authenticated:
            return user, how, None, False, None
        found = selectors.room_with_access(slug=slug, user=user)
        if found is None:
            return user, how, None, False, None
        room, allowed = found
        if not allowed:
            return user, how, room, False, None
        # last_seq comes from the room row, read before the messages: it never exceeds them.
        last_seq = room.last_seq
        if last_seq == 0 or (after is not None and after >= last_seq):
            # Nothing to send; anything committed from now on arrives through the hub.
            snapshot = ([], last_seq, False)
        elif after is None:
            messages, _ = selectors.message_list_latest(room=room, limit=settings.CHAT_HELLO_LATEST)
            snapshot = (messages, last_seq, False)
        else:
            messages, more = selectors.message_list_after(room=room, after=after, limit=settings.CHAT_RECOVERY_MAX)
            snapshot = (messages, last_seq, more)
        return user, how, room, True, snapshot

    async def disconnect(self, code):
        self._take_pending_upload()
        if self.room is None:
            return
        await get_hub().leave(self.room.slug, self)
        change = await get_presence_store().leave(room=self.room.slug, user=self.user_obj, connection=self.connection_id)
        if change.changed:
            await self._broadcast_presence(change)
        log.info("ws close room=%s user=%s code=%s", self.room.slug, self.user_obj["id"], code)

    async def _broadcast_presence(self, change):
        # The user's own connections learn the list from hello (a join is their first
        # connection; a leave was their last), so they are skipped.
        frame = events.presence(online=change.online, joined=change.joined, left=change.left)
        await broadcast.room_broadcast(room=self.room.slug, frame=frame, skip_user=self.user_obj["id"])

    # -- frames from the client ------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.room is None:
            return
        frame = None
        try:
            if bytes_data is not None:
                return await self.receive_upload_bytes(bytes_data)
            self.discard_next_binary = False
            abandoned = self._take_pending_upload()
            if abandoned is not None:
                await self.send_error(
                    ChatError("bad_request", "the upload's binary frame must come next; nothing stored",
                              client_id=abandoned.client_id)
                )
            frame = frames.decode(text_data)
            await getattr(self, "frame_" + frame["type"])(frame)
        except ChatError as exc:
            await self.send_error(exc)
        except DatabaseError:
            log.exception("database error in room=%s user=%s", self.room.slug, self.user_obj["id"])
            await self.send_error(ChatError("unavailable", "the database is unavailable; nothing was stored",
                                            client_id=_client_id_of(frame)))
        except Exception:
            # A bug or a backing service down (the rate limiter's Redis) must not cost the
            # client its connection; it gets an error frame naming its client_id, so it resends.
            log.exception("frame failed in room=%s user=%s", self.room.slug, self.user_obj["id"])
            await self.send_error(ChatError("unavailable", "the server failed to handle this frame; nothing was stored",
                                            client_id=_client_id_of(frame)))

    async def frame_message(self, frame):
        body, client_id = services.message_validate(body=frame.get("body"), client_id=frame.get("client_id"))
        await self._store_and_broadcast(body=body, client_id=client_id)

    async def _store_and_broadcast(self, *, body, client_id, attachment=None):
        if not await get_rate_limiter().take(f"{self.room.slug}:{self.user_obj['id']}"):
            # A resent client_id that is already stored costs nothing: it is answered, not refused.
            stored = client_id is not None and await database_sync_to_async(services.message_stored_frame)(
                room=self.room, user=self.user, client_id=client_id)
            if not stored:
                log.warning("rate limited room=%s user=%s", self.room.slug, self.user_obj["id"])
                raise ChatError("rate_limited", "too many messages; slow down (nothing was stored)",
                                client_id=client_id)
            answered = asyncio.get_running_loop().create_future()
            answered.set_result((stored, False))
            return self._queue_reply(answered, client_id)
        # Pipelined: the message joins the process's next batch (chat/writer.py) and the
        # socket reads its next frame meanwhile; the ack, or the error, is sent in frame
        # order by the reply chain once the batch commits and is broadcast.
        while len(self._replies) >= PIPELINE_MAX:
            self._space = asyncio.get_running_loop().create_future()
            await self._space
        draft = services.MessageDraft(room=self.room, user=self.user, body=body, client_id=client_id,
                                      attachment=attachment)
        self._queue_reply(get_writer().submit(draft), client_id)

    def _queue_reply(self, stored: asyncio.Future, client_id: str | None) -> None:
        """Queue the answer to a stored (or already stored) message behind earlier replies."""
        if not isinstance(self._replies, deque):
            self._replies = deque()
        self._replies.append((stored, client_id))
        if self._replier is None or self._replier.done():
            self._replier = asyncio.ensure_future(self._send_replies())

    async def _send_replies(self) -> None:
        """Send the reply chain in order: acks (or errors) as their messages are stored, frames as queued."""
        while self._replies:
            entry = self._replies[0]
            close = False
            if isinstance(entry, tuple):
                frame, close = await self._store_reply(*entry)
            else:
                frame = entry
            try:
                await self.send(text_data=events.encode(frame))
                if close:
                    await self.close(code=CLOSE_NOT_FOUND)
            except Exception:
                log.exception("reply not sent room=%s", self.room.slug if self.room else None)
            finally:
                # Popped only once sent, so a frame queued meanwhile cannot overtake it.
                self._replies.popleft()
                if self._space is not None and not self._space.done():
                    self._space.set_result(None)

    async def _store_reply(self, stored: asyncio.Future, client_id: str | None) -> tuple[events.Frame, bool]:
        """Return the frame answering a stored message, and whether the socket must then close."""
        try:
            message, _created = await stored
        except ChatError as exc:
            if exc.code == "not_found":
                # The room was deleted under this socket: say so, then close as for a missing room.
                return events.error(code="forbidden", detail="this room no longer exists; nothing was stored",
                                    client_id=client_id), True
            return events.error(code=exc.code, detail=exc.detail, client_id=client_id), False
        except DatabaseError:
            log.exception("message not stored room=%s user=%s", self.room.slug, self.user_obj["id"])
            return events.error(code="unavailable", detail="the database is unavailable; nothing was stored",
                                client_id=client_id), False
        except Exception:
            log.exception("message failed room=%s user=%s", self.room.slug, self.user_obj["id"])
            return events.error(code="unavailable", detail="the server failed to store this message",
                                client_id=client_id), False
        return events.ack(client_id=client_id, message_id=message["id"], seq=message["seq"]), False

    async def frame_typing(self, frame):
        active = frames.check_bool(frame, "active")
        now = time.monotonic()
        if active:
            if now - self.typing_relayed_at < settings.CHAT_TYPING_MIN_INTERVAL:
                return
            self.typing_relayed_at = now
        elif not self.typing_on:
            return
        self.typing_on = active
        await broadcast.room_broadcast(
            room=self.room.slug, frame=events.typing(user=self.user_obj, active=active), skip_user=self.user_obj["id"]
        )

    async def frame_history(self, frame):
        before, limit = frames.check_history(frame)
        messages, has_more = await database_sync_to_async(selectors.message_list_before)(
            room=self.room, before=before, limit=limit
        )
        await self.send_frame(events.history(messages=messages, has_more=has_more))

    async def frame_ping(self, frame):
        await self.send_frame(events.pong(ts=frames.check_ping(frame)))

    async def frame_upload(self, frame):
        try:
            header = uploads.upload_check(frame)
        except ChatError:
            self.discard_next_binary = True
            raise
        self.pending_upload = header
        self.upload_timer = asyncio.get_running_loop().call_later(
            settings.CHAT_UPLOAD_TIMEOUT, lambda: asyncio.ensure_future(self._upload_expired(header))
        )

    async def receive_upload_bytes(self, data: bytes):
        header = self._take_pending_upload()
        if header is None:
            if self.discard_next_binary:
                self.discard_next_binary = False
                return
            raise ChatError("bad_request", "binary frame with no upload pending; the bytes were discarded")
        upload = uploads.upload_complete(header, data)
        await self._store_and_broadcast(body=header.body, client_id=header.client_id, attachment=upload)

    async def _upload_expired(self, header):
        if self.pending_upload is header:
            self._take_pending_upload()
            await self.send_error(
                ChatError("bad_request", "the upload's bytes never came; nothing stored", client_id=header.client_id)
            )

    def _take_pending_upload(self) -> uploads.UploadHeader | None:
        header, self.pending_upload = self.pending_upload, None
        if self.upload_timer is not None:
            self.upload_timer.cancel()
            self.upload_timer = None
        return header

    async def dispatch(self, message):
        # Channels hops to a thread to close stale DB connections before every handler.
        # This consumer touches the database only through database_sync_to_async, which
        # does that itself around each call, so the extra hop per event is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    # -- events from the room, via the hub ----------------------------------

    def deliver(self, delivery: Delivery, skip_user: int | None = None) -> None:
        """Write a room event the hub encoded once for every local socket of the room."""
        if not self._ready:
            # Before hello; the user may not be known yet, so the skip is checked on flush.
            self._backlog.append((delivery, skip_user))
        elif self._raw_send is not None:
            self._raw_send(delivery.payloads, delivery.wire)
        else:
            # Servers without our Daphne extension (e.g. the test communicator): ASGI send,
            # in order, from one task.
            if self._outbox is None:
                self._outbox = deque()
            self._outbox.extend(delivery.texts)
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.ensure_future(self._drain_outbox())

    async def _drain_outbox(self) -> None:
        while self._outbox:
            await self.send(text_data=self._outbox.popleft())

    # -- helpers ---------------------------------------------------------------

    async def send_frame(self, frame: events.Frame):
        if self._replies:
            # Acks are still due for earlier frames: this reply waits its turn behind them.
            self._replies.append(frame)
            return
        await self.send(text_data=events.encode(frame))

    async def send_error(self, exc: ChatError):
        await self.send_frame(events.error(code=exc.code, detail=exc.detail, client_id=exc.client_id))


def _client_id_of(frame: dict | None) -> str | None:
    """The client_id of a decoded frame, if it carries a well-formed one."""
    client_id = frame.get("client_id") if isinstance(frame, dict) else None
    return client_id if isinstance(client_id, str) else None
