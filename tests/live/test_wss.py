"""A real Daphne over TLS and a real WebSocket client: tokens, sessions, origin, limits, restarts."""

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live.conftest import PASSWORD
from tests.support import clients

pytestmark = pytest.mark.live


def ws_connect(server, path="/ws/rooms/lobby/", **kwargs):
    return connect(server.ws_origin + path, ssl=server.ssl_context(), open_timeout=10, close_timeout=5, **kwargs)


async def recv_json(ws, timeout=10):
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, kind):
    while True:
        frame = await recv_json(ws)
        assert frame["type"] != "error", frame
        if frame["type"] == kind:
            return frame


def https_login(server, username: str, password: str) -> str:
    """Log in through the real login page over TLS; return the session cookie."""
    return clients.https_login(server.origin, username, password, ssl_context=server.ssl_context())


async def test_token_client_sends_and_receives_over_wss(server, alice):
    headers = {"Authorization": f"Bearer {alice['token']}"}
    async with ws_connect(server, additional_headers=headers) as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "hello" and hello["user"]["username"] == "alice"
        await ws.send(json.dumps({"type": "message", "body": "over tls", "client_id": "live-1"}))
        ack = await recv_type(ws, "ack")
        assert ack["client_id"] == "live-1" and ack["seq"] >= 1


async def test_session_cookie_and_query_token_clients_chat_together(server, alice, bob):
    cookie = https_login(server, "bob", PASSWORD)
    async with ws_connect(server, additional_headers={"Cookie": f"sessionid={cookie}"}, origin=server.origin) as bob_ws:
        bob_hello = await recv_json(bob_ws)
        assert bob_hello["user"]["username"] == "bob"
        async with ws_connect(server, f"/ws/rooms/lobby/?token={alice['token']}") as alice_ws:
            await recv_json(alice_ws)
            await alice_ws.send(json.dumps({"type": "message", "body": "hi bob", "client_id": "live-2"}))
            message = await recv_type(bob_ws, "message")
            assert message["body"] == "hi bob" and message["user"]["username"] == "alice"


async def test_foreign_origin_is_refused_with_403(server, alice):
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(server, additional_headers={"Authorization": f"Bearer {alice['token']}"}, origin="https://evil.example"):
            pass
    assert info.value.response.status_code == 403


async def test_anonymous_socket_is_closed_4401(server):
    async with ws_connect(server) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await recv_json(ws)
    assert info.value.rcvd.code == 4401


async def test_frame_over_the_hard_cap_drops_only_that_connection(server, alice):
    headers = {"Authorization": f"Bearer {alice['token']}"}
    async with ws_connect(server, additional_headers=headers) as bystander, ws_connect(
        server, additional_headers=headers, max_size=None
    ) as ws:
        await recv_json(bystander)
        await recv_json(ws)
        await ws.send("x" * 200_000)  # hard cap here: 100000 + 64 KiB
        with pytest.raises(ConnectionClosed):
            while True:
                await recv_json(ws)
        await bystander.send(json.dumps({"type": "ping", "ts": "alive"}))
        assert await recv_type(bystander, "pong") == {"type": "pong", "ts": "alive"}


async def test_history_survives_a_restart(server, alice):
    headers = {"Authorization": f"Bearer {alice['token']}"}
    async with ws_connect(server, additional_headers=headers) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "message", "body": "remember me", "client_id": "live-restart"}))
        ack = await recv_type(ws, "ack")
    server.stop()
    server.start()
    async with ws_connect(server, f"/ws/rooms/lobby/?after={ack['seq'] - 1}", additional_headers=headers) as ws:
        hello = await recv_json(ws)
    assert [m["body"] for m in hello["messages"]] == ["remember me"]
    assert hello["messages"][0]["seq"] == ack["seq"] and hello["last_seq"] == ack["seq"]
