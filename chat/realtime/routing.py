"""WebSocket routes of the chat; any other path is refused quietly at the handshake."""

import logging

from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.urls import path

from chat.protocol import codes
from chat.realtime.consumer import RoomConsumer
from chat.realtime.user_socket import UserConsumer

log = logging.getLogger(__name__)

websocket_urlpatterns = [
    path(codes.ROOM_SOCKET_PATH.lstrip("/").replace("{slug}", "<slug:slug>"), RoomConsumer.as_asgi()),
    path(codes.USER_SOCKET_PATH.lstrip("/"), UserConsumer.as_asgi()),
]


class QuietURLRouter(URLRouter):
    """Channels' URLRouter, but an unknown path is refused (HTTP 403) instead of raising.

    URLRouter raises ValueError("No route found"), which Daphne logs as an ERROR with a
    traceback and answers with HTTP 500: a scanner could fill the log that way.
    """

    async def __call__(self, scope, receive, send):
        try:
            return await super().__call__(scope, receive, send)
        except ValueError as exc:
            if not str(exc).startswith("No route found"):
                raise
            log.info("ws refused: no route for path=%s", scope.get("path"))
            return await WebsocketDenier()(scope, receive, send)


def websocket_application():
    """Return the chat's WebSocket application: the routes behind the origin check."""
    from chat.realtime.handshake import OriginCheckMiddleware

    return OriginCheckMiddleware(QuietURLRouter(websocket_urlpatterns))
