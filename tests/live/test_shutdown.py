"""Protocol section 9: SIGTERM drains a real Daphne; every socket gets 1012 and nothing acknowledged is lost."""

import asyncio
import json
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.clients import room_messages_all, ws_connect
from tests.support.server import LiveServer

pytestmark = pytest.mark.live


async def _chatter(server, token: str, name: str, acked: dict, stop: asyncio.Event) -> tuple[int | None, list[dict]]:
    """Send messages until the socket closes; record acks; return the close code and the error frames."""
    errors = []
    async with ws_connect(f"{server.ws_origin}/ws/rooms/lobby/", token=token, ssl_context=server.ssl_context()) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        n = 0

        async def send():
            nonlocal n
            while not stop.is_set():
                await ws.send(json.dumps({"type": "message", "body": f"{name} {n}", "client_id": f"{name}-{n}"}))
                n += 1
                await asyncio.sleep(0.01)  # a steady sender, not a flood the rate limit would refuse

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "ack":
                    acked[frame["client_id"]] = frame["seq"]
                elif frame["type"] == "error":
                    errors.append(frame)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
        return ws.close_code, errors


async def _user_socket(server, token: str, opened: asyncio.Event) -> int | None:
    """Hold a user socket open until the server closes it; return the close code."""
    async with ws_connect(f"{server.ws_origin}/ws/user/", token=token, ssl_context=server.ssl_context()) as ws:
        assert json.loads(await ws.recv())["type"] == "user_hello"
        opened.set()
        try:
            async for _raw in ws:
                pass
        except ConnectionClosed:
            pass
        return ws.close_code


async def test_sigterm_answers_what_was_read_then_closes_every_socket_with_1012(tmp_path):
    env = {"CHAT_RATE_BURST": "1000", "CHAT_RATE_PER_SECOND": "1000", "CHAT_SHUTDOWN_GRACE": "5"}
    server = LiveServer(tmp_path, env)
    server.prepare()
    users = [server.create_user(f"drain{i}", "drain-pass-phrase-1") for i in range(3)]
    server.start()
    acked: dict[str, int] = {}
    stop = asyncio.Event()
    try:
        opened = asyncio.Event()
        watcher = asyncio.create_task(_user_socket(server, users[0]["token"], opened))
        await asyncio.wait_for(opened.wait(), 10)
        chats = [asyncio.create_task(_chatter(server, u["token"], u["username"], acked, stop)) for u in users]
        while len(acked) < 30:  # every socket is busy when the signal comes
            await asyncio.sleep(0.05)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*chats), 15)
        user_socket_closed = await asyncio.wait_for(watcher, 5)
        closed_after = time.monotonic() - signalled
        exit_code = await asyncio.to_thread(server.process.wait, 15)
    finally:
        stop.set()
        server.stop()
    assert [code for code, _ in results] == [1012, 1012, 1012]
    assert user_socket_closed == 1012  # the user socket too
    assert exit_code == 0
    assert closed_after < 5 + 1  # within the grace period
    # Frames read after the drain began were answered, not dropped: unavailable, naming the message.
    for _, errors in results:
        assert all(e["code"] == "unavailable" and e.get("client_id") for e in errors), errors
    # Every acknowledged message is stored, under the seq its ack gave.
    server.start()
    try:
        stored = {m["client_id"]: m["seq"] for m in room_messages_all(
            server.origin, "lobby", token=users[0]["token"], ssl_context=server.ssl_context())}
    finally:
        server.stop()
    assert acked and all(stored.get(cid) == seq for cid, seq in acked.items())
