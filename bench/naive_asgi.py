"""The Channels tutorial's chat consumer: the benchmarks' baseline, run through CHAT_ASGI_APP.

One group per room, one group_send per message, nothing stored, no auth checks: what
bench/ compares the real room socket (chat/realtime/consumer.py) against. Served at
ws/naive/<room>/ by the same `python -m chatproject.server`, with the chat's settings
(and so its channel layer).
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402 - after django.setup()
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class NaiveChatConsumer(AsyncWebsocketConsumer):
    """Relay every `message` frame's body to everyone in the room, the tutorial way."""

    async def connect(self):
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


application = URLRouter([path("ws/naive/<slug:room>/", NaiveChatConsumer.as_asgi())])
