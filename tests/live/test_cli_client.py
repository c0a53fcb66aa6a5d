"""The command-line client against the real server: logs in, prints the room, sends stdin."""

import asyncio
import json
import subprocess
import sys

import pytest

from tests.live.conftest import PASSWORD
from tests.live.test_wss import recv_json, recv_type, ws_connect
from tests.support.server import REPO

pytestmark = pytest.mark.live


async def test_cli_prints_the_room_and_sends_stdin_lines(server, alice, bob):
    headers = {"Authorization": f"Bearer {bob['token']}"}
    async with ws_connect(server, "/ws/rooms/lobby/", additional_headers=headers) as bob_ws:
        await recv_json(bob_ws)
        await bob_ws.send(json.dumps({"type": "message", "body": "hello cli", "client_id": "cli-bob"}))
        got = {}
        while len(got) < 2:  # the ack and bob's own copy, in either order
            frame = await recv_json(bob_ws)
            got[frame["type"]] = frame
        before = got["ack"]
        assert got["message"]["body"] == "hello cli"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chat.client", "--url", server.origin, "--room", "lobby",
            "--username", "alice", "--password", PASSWORD, "--cafile", str(server.cert), "--max-retries", "1",
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(b"first line\nsecond line\n"), timeout=60)
        assert process.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert f"[{before['seq']}] bob: hello cli" in lines
        seen = [(await recv_type(bob_ws, "message"))["body"] for _ in range(2)]
        assert seen == ["first line", "second line"]
        assert any(line.endswith("alice: second line") for line in lines)


async def test_cli_edits_and_deletes_by_seq_and_everyone_sees_it(server, alice, bob):
    async with ws_connect(server, "/ws/rooms/lobby/", additional_headers={"Authorization": f"Bearer {alice['token']}"}) as alice_ws, \
            ws_connect(server, "/ws/rooms/lobby/", additional_headers={"Authorization": f"Bearer {bob['token']}"}) as bob_ws:
        await recv_json(alice_ws)
        await recv_json(bob_ws)
        await alice_ws.send(json.dumps({"type": "message", "body": "teh typo", "client_id": "cli-typo"}))
        seq = (await recv_type(alice_ws, "ack"))["seq"]
        await recv_type(bob_ws, "message")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chat.client", "--url", server.origin, "--room", "lobby",
            "--token", alice["token"], "--cafile", str(server.cert), "--max-retries", "1",
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(f"/edit {seq} the fix\n/delete {seq}\n/edit 999999 nothing\n".encode()), timeout=60)
        assert process.returncode == 0, err.decode()
        edited = await recv_type(bob_ws, "message")
        assert (edited["seq"], edited["body"], edited["edited"] is not None) == (seq, "the fix", True)
        deleted = await recv_type(bob_ws, "message")
        assert (deleted["seq"], deleted["deleted"], deleted["body"]) == (seq, True, "")
        lines = out.decode().splitlines()
        assert f"[{seq}] alice: the fix (edited)" in lines and f"[{seq}] alice: (message deleted)" in lines
        assert "/edit needs the seq of a message shown here" in err.decode()
