"""A diagnostics echo socket for conformance tests (Autobahn); off unless CHAT_ECHO_ENDPOINT is set."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings


class EchoConsumer(AsyncWebsocketConsumer):
    """Send every frame back as it came, text as text and bytes as bytes."""

    async def connect(self):
        if not settings.CHAT_ECHO_ENDPOINT:
            return await self.close()  # before accept: the handshake gets HTTP 403
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None:
            await self.send(bytes_data=bytes_data)
        else:
            await self.send(text_data=text_data)
