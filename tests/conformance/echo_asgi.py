"""An echo WebSocket server for the Autobahn cases, run through CHAT_ASGI_APP (not a route of the chat).

Served by `python -m chatproject.server` like the chat, so the cases test our Daphne
adaptation (compression, empty frames); any path echoes, as the conformance tools connect to "/".
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django.setup()  # the chat's settings: its logging (Daphne's "Listening on" line) and channel layer

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402 - after django.setup()


class EchoConsumer(AsyncWebsocketConsumer):
    """Send every frame back as it came, text as text and bytes as bytes."""

    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None:
            await self.send(bytes_data=bytes_data)
        else:
            await self.send(text_data=text_data)


application = EchoConsumer.as_asgi()
