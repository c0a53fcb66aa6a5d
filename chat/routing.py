from django.urls import path

from chat.consumers import RoomConsumer
from chat.echo import EchoConsumer
from chat.naive import NaiveChatConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
    # Diagnostics only (refused unless CHAT_ECHO_ENDPOINT): conformance tools connect to "/".
    path("ws/echo/", EchoConsumer.as_asgi()),
    path("ws/naive/<slug:room>/", NaiveChatConsumer.as_asgi()),  # benchmarks only (CHAT_NAIVE_ENDPOINT)
    path("", EchoConsumer.as_asgi()),
]
