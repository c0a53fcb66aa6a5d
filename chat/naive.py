"""The Channels tutorial's chat consumer, for benchmarks only; refused unless CHAT_NAIVE_ENDPOINT is set.

One group per room, one group_send per message, nothing stored, no auth checks: the
baseline that bench/ compares the real room socket (chat/consumers.py) against.
"""

import json

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings


class NaiveChatConsumer(AsyncWebsocketConsumer):
    """Relay every `message` frame's body to everyone in the room, the tutorial way."""

    async def connect(self):
        if not settings.CHAT_NAIVE_ENDPOINT:
            return await self.close()  # before accept: the handshake gets HTTP 403
        self.group_name = "naive_" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "group_name", None):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        data = json.loads(text_data)
        await self.channel_layer.group_send(self.group_name, {"type": "chat.message", "body": data["body"]})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"type": "message", "body": event["body"]}))
