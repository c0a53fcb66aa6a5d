"""A consumer with one input: the socket. The base of the room socket and the user socket.

Events from rooms reach these sockets through the process's hub (chat/realtime/hub.py),
so a socket needs no channel-layer channel of its own: no subscription, no receive loop.
"""

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class LeanConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = None

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

    async def dispatch(self, message):
        # Channels hops to a thread to close stale DB connections before every handler;
        # database work here goes through database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        # Channels' own also leaves the consumer's groups (it has none) and then hops to the
        # database thread to close stale connections: a thread trip on every close, ~17% of a
        # connect storm's samples (bench/FINDINGS.md). Database work here does that itself.
        await self.disconnect(message["code"])
        raise StopConsumer()
