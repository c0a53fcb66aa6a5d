"""Helpers for driving the whole ASGI stack with WebsocketCommunicator."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import presence, ratelimit
from chatproject.asgi import application


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with an empty presence store and full rate-limit buckets."""
    presence._store.cache_clear()
    ratelimit._limiter.cache_clear()
    yield
    presence._store.cache_clear()
    ratelimit._limiter.cache_clear()


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Socket:
    """A WebsocketCommunicator that speaks JSON frames."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]]):
        self.comm = WebsocketCommunicator(application, path, headers=headers)

    async def connect(self):
        return await self.comm.connect(timeout=5)

    async def send(self, frame) -> None:
        # send_input, not send_to: send_to refuses the empty frames real clients can send.
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.comm.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.comm.send_input({"type": "websocket.receive", "bytes": data})

    async def recv(self, timeout: float = 5) -> dict:
        return json.loads(await self.comm.receive_from(timeout=timeout))

    async def recv_type(self, kind: str, timeout: float = 5) -> dict:
        """Receive frames until one of this type; fail on an error frame."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            assert frame["type"] != "error", frame

    async def collect(self, *kinds: str, timeout: float = 5) -> dict[str, dict]:
        """Receive until one frame of each kind arrived, in any order; other kinds are skipped."""
        got: dict[str, dict] = {}
        while len(got) < len(kinds):
            frame = await self.recv(timeout)
            assert frame["type"] != "error" or "error" in kinds, frame
            if frame["type"] in kinds and frame["type"] not in got:
                got[frame["type"]] = frame
        return got

    async def closed_with(self, timeout: float = 5) -> int:
        output = await self.comm.receive_output(timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code")

    async def close(self):
        await self.comm.disconnect()


def socket_for(path: str, *, cookie: str | None = None, bearer: str | None = None, origin: str | None = None):
    headers = []
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    if bearer:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    return Socket(path, headers)


@pytest.fixture
async def open_socket():
    """Open sockets that are closed at the end of the test; returns (socket, first frame: `hello`, or `first`)."""
    sockets: list[Socket] = []

    async def opener(path: str, first: str = "hello", **auth):
        sock = socket_for(path, **auth)
        connected, _ = await sock.connect()
        assert connected
        sockets.append(sock)
        hello = await sock.recv()
        assert hello["type"] == first, hello
        return sock, hello

    yield opener
    for sock in sockets:
        try:
            await sock.close()
        except BaseException:  # noqa: BLE001 - a receive timeout already cancelled the app
            pass


async def post_acked(sock, body, client_id):
    """Send a message; return its broadcast once both it and its ack came (other frames may come between)."""
    await sock.send({"type": "message", "body": body, "client_id": client_id})
    acked = message = None
    while acked is None or message is None:
        frame = await sock.recv()
        if frame.get("client_id") == client_id:
            acked = frame if frame["type"] == "ack" else acked
            message = frame if frame["type"] == "message" else message
    return message
