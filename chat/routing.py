from django.urls import path

from chat.consumers import RoomConsumer
from chat.echo import EchoConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
    # Diagnostics only (refused unless CHAT_ECHO_ENDPOINT): conformance tools connect to "/".
    path("ws/echo/", EchoConsumer.as_asgi()),
    path("", EchoConsumer.as_asgi()),
]
