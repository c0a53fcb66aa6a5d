"""Bytes on the wire for a room's `hello` (50 messages), with and without permessage-deflate.

Starts the real server over plain ws:// on 127.0.0.1 (tests.support.server.live_server, its
own SQLite file), fills the lobby with 50 chat messages of 20 to 300 characters sent as
`message` frames by four users, then opens the lobby through a small TCP relay that counts
what the server sends. Measured per case: the handshake response and the first WebSocket
message (the `hello`) as they crossed the wire, and whether its frame had RSV1 set
(compressed). Two servers: CHAT_WS_COMPRESSION=1 (the default) and =0; against each, a
client that offers permessage-deflate (websockets' default) and one that offers nothing.

    .venv/bin/python bench/compression_hello.py [--out bench/results/compression_hello.json]
"""

import argparse
import asyncio
import json
import shutil
import tempfile
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support.server import live_server

HOST = "127.0.0.1"
ROOM = "lobby"
PASSWORD = "bench-pass-phrase-9"
USERS = ["alice", "bob", "carol", "dave"]

# Fifty distinct messages written like a team's chat: varied length (20..300 chars), some
# links, code, numbers and non-ASCII; no sentence repeats, so deflate gets no free wins.
MESSAGES = [
    "morning all, coffee machine is fixed",
    "Did anyone else get logged out of the staging admin around 9:40? I had to sign in twice.",
    "yes, me too, right after lunch",
    "That was the deploy. The session key rotated because DJANGO_SECRET_KEY changed on staging; sorry, should have warned.",
    "np, it happens, thanks for saying",
    "Standup in 5 minutes, room 3B or the usual video link.",
    "I'll be a few minutes late, train stuck outside Utrecht Centraal 🚆",
    "Reminder: the quarterly security review is on Thursday. Please go through the list of open issues tagged "
    "`security` before then and leave a comment on each with either a fix plan or a reason it can wait.",
    "who owns the flaky browser test? test_typing_indicator_shows_the_other_user failed twice on main today",
    "me, looking into it now",
    "It's the 6 second expiry racing the assertion on a slow runner. Raising the wait to 10 s fixes it locally; "
    "PR coming.",
    "Lunch: Thai place or the café on the corner?",
    "café, they have the lentil soup on Tuesdays",
    "+1 café, the soup is great",
    "Fine by me. 12:30 at the door?",
    "Quick question about the history endpoint: is `before` exclusive? I'm getting 50 messages back and the one "
    "with seq=before isn't among them, which is what I'd expect, but the old docs said inclusive.",
    "exclusive, seq < before. The old docs were wrong.",
    "thanks! that explains it",
    "Heads up, PostgreSQL on the shared box goes down for a minor upgrade tonight between 22:00 and 22:15 CET.",
    "Will the chat keep working during that window?",
    "Sockets stay open but sends will get `unavailable` errors until the database is back; nothing is lost on the "
    "client side since unacked messages are resent with the same client_id.",
    "ok good, then I'll stop worrying",
    "Here's the graph from last night's load test: p99 delivery latency stayed under 40 ms up to 3,000 clients, then "
    "climbed to 180 ms at 5,000. CPU on the two workers was around 70% at the top. Full report with the raw numbers "
    "is at https://wiki.example.internal/load-tests/2024-w18 for anyone curious.",
    "nice, what was Redis doing?",
    "Barely anything, 4% of a core.",
    "So the next bottleneck is the workers themselves. Adding a third should help more than tuning.",
    "Agreed. I'll try WORKERS=3 on the bench box tomorrow.",
    "Can someone review #412? It's small: the upload dialog now shows the file size next to the name.",
    "on it, give me twenty minutes",
    "Left two comments, looks good otherwise. Approve once the rounding is fixed (1.0 MB vs 1 MB).",
    "fixed & merged, thanks Carol",
    "Is the staging certificate about to expire? My browser shows 12 days left.",
    "Renewal is automated, it should roll over a week before expiry. I'll check the timer anyway.",
    "Timer is fine, last run was yesterday, next one in 5 days.",
    "👍 thanks for checking the timer",
    "Friendly reminder that Friday is a public holiday here, so the release moves to Thursday afternoon.",
    "Release notes draft is in the shared folder. Please add anything user-visible you merged since 2.3.",
    "Added the attachment thumbnails and the per-user connection limit (4429).",
    "What do we tell users who hit 4429?",
    "Close some tabs. The limit is 20 sockets per user across all rooms, which nobody reaches by accident; it's "
    "there to stop a runaway script from opening thousands. The browser page backs off and retries on its own, so "
    "closing a tab is enough; the page reconnects by itself.",
    "makes sense, I'll put that in the notes",
    "Someone left a half-eaten cake in the kitchen with a note saying 'free', just so you know.",
    "on my way, save me a slice",
    "The nightly backup job took 41 minutes instead of the usual 12. Disk was fine; it looks like the attachments "
    "folder grew by 9 GB this week. Anyone uploading videos? If so, no blame, but the backup window is only an hour "
    "and we are getting close to it.",
    "guilty, screen recordings for the onboarding guide. I'll move them to the wiki storage.",
    "Thanks. No rush, but let's keep chat attachments to screenshots and small files.",
    "Retro is at 15:00. Please add cards for what went well and what didn't before the meeting, not during.",
    "Added three cards. Main one: we merged the presence rewrite on a Friday and spent Monday on it.",
    "fair, no more Friday merges of anything that touches Redis",
    "Signing off, see you all tomorrow. Ping me on the phone if production catches fire.",
]


class Relay:
    """A TCP relay on 127.0.0.1 that records every byte each connection sends both ways."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.captures: list[dict[str, bytearray]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, client_reader, client_writer):
        capture = {"to_client": bytearray(), "to_server": bytearray()}
        self.captures.append(capture)
        server_reader, server_writer = await asyncio.open_connection(HOST, self.upstream_port)

        async def pipe(reader, writer, sink):
            try:
                while data := await reader.read(65536):
                    sink.extend(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(
            pipe(server_reader, client_writer, capture["to_client"]),
            pipe(client_reader, server_writer, capture["to_server"]),
        )


def first_message(stream: bytes) -> dict:
    """Split a server->client byte stream into the HTTP response and its first data message."""
    end = stream.index(b"\r\n\r\n") + 4
    response = stream[:end].decode("latin-1")
    pos, frames, compressed = end, [], None
    while True:
        b0, b1 = stream[pos], stream[pos + 1]
        length, header = b1 & 0x7F, 2
        if length == 126:
            length, header = int.from_bytes(stream[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            length, header = int.from_bytes(stream[pos + 2:pos + 10], "big"), 10
        assert not b1 & 0x80, "server frames are never masked"
        opcode = b0 & 0x0F
        if opcode in (0x1, 0x2, 0x0):  # text, binary, continuation
            if compressed is None:
                compressed = bool(b0 & 0x40)  # RSV1 on the first frame: permessage-deflate
            frames.append(header + length)
            if b0 & 0x80:  # FIN
                break
        pos += header + length
    extension = next(
        (line.split(":", 1)[1].strip() for line in response.split("\r\n")
         if line.lower().startswith("sec-websocket-extensions:")),
        None,
    )
    return {
        "handshake_response_bytes": end,
        "hello_frame_bytes": sum(frames),
        "hello_frames": len(frames),
        "hello_compressed": compressed,
        "negotiated_extension": extension,
    }


async def fill_room(port: int, users: dict[str, dict]) -> None:
    """Send the 50 messages round-robin from every user's socket, each awaited by its ack."""
    sockets, drains, acks = {}, [], {}
    for name, user in users.items():
        ws = await connect(f"ws://{HOST}:{port}/ws/rooms/{ROOM}/", compression=None,
                           additional_headers={"Authorization": f"Bearer {user['token']}"})
        sockets[name] = ws
        acks[name] = asyncio.Queue()

        async def drain(ws=ws, queue=acks[name]):
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] in ("ack", "error"):
                    await queue.put(frame)

        drains.append(asyncio.create_task(drain()))
    names = list(users)
    for i, body in enumerate(MESSAGES):
        name = names[i % len(names)]
        await sockets[name].send(json.dumps({"type": "message", "body": body, "client_id": str(uuid.uuid4())}))
        frame = await asyncio.wait_for(acks[name].get(), 10)
        if frame["type"] != "ack":
            raise RuntimeError(f"message {i} refused: {frame}")
    for ws in sockets.values():
        await ws.close()
    await asyncio.gather(*drains, return_exceptions=True)


async def measure(port: int, token: str, *, offer: bool) -> dict:
    """Open the room through the relay once; return what the server sent for handshake + hello."""
    relay = Relay(port)
    relay_port = await relay.start()
    try:
        async with connect(
            f"ws://{HOST}:{relay_port}/ws/rooms/{ROOM}/",
            compression="deflate" if offer else None,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=None,
        ) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello" and len(hello["messages"]) == len(MESSAGES), hello.get("type")
        payload = len(json.dumps(hello, ensure_ascii=False, separators=(",", ":")).encode())
    finally:
        await relay.stop()
    wire = first_message(bytes(relay.captures[0]["to_client"]))
    return {
        "client_offers_deflate": offer,
        **wire,
        "handshake_plus_hello_bytes": wire["handshake_response_bytes"] + wire["hello_frame_bytes"],
        "hello_json_bytes": payload,
    }


async def run_server(workdir: Path, compression: bool) -> dict:
    env = {"CHAT_WS_COMPRESSION": "1" if compression else "0", "CHAT_RATE_BURST": "100", "CHAT_DAPHNE_VERBOSITY": "0"}
    with live_server(workdir, extra_env=env, tls=False) as server:
        users = {name: server.create_user(name, PASSWORD) for name in USERS}
        await fill_room(server.port, users)
        reader = server.create_user("reader", PASSWORD)
        plain = await measure(server.port, reader["token"], offer=False)
        offered = await measure(server.port, reader["token"], offer=True)
    return {
        "server": f"CHAT_WS_COMPRESSION={'1' if compression else '0'}",
        "client_without_offer": plain,
        "client_offering_deflate": offered,
        "hello_ratio": round(offered["hello_frame_bytes"] / plain["hello_frame_bytes"], 3),
        "handshake_plus_hello_ratio": round(
            offered["handshake_plus_hello_bytes"] / plain["handshake_plus_hello_bytes"], 3
        ),
    }


async def main_async(out: Path) -> dict:
    lengths = [len(m) for m in MESSAGES]
    assert len(MESSAGES) == 50 and min(lengths) >= 20 and max(lengths) <= 300, (min(lengths), max(lengths))
    assert len(set(MESSAGES)) == len(MESSAGES)
    root = Path(tempfile.mkdtemp(prefix="bench-compression-"))
    try:
        runs = [await run_server(root / name, compression) for name, compression in (("on", True), ("off", False))]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "what": "server->client bytes for the WebSocket handshake response and the first frame (hello with 50 messages)",
        "messages": len(MESSAGES),
        "body_chars": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
        "client": "websockets 17 asyncio client: compression='deflate' (offers permessage-deflate; "
                  "client_max_window_bits) vs compression=None (offers nothing)",
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compression_hello.json"))
    args = parser.parse_args()
    result = asyncio.run(main_async(Path(args.out)))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print()
    print(f"{'server':<22} {'client':<14} {'handshake':>9} {'hello':>7} {'total':>7}  compressed")
    for run in result["runs"]:
        for key, label in (("client_without_offer", "no offer"), ("client_offering_deflate", "offers deflate")):
            row = run[key]
            print(f"{run['server']:<22} {label:<14} {row['handshake_response_bytes']:>9} {row['hello_frame_bytes']:>7} "
                  f"{row['handshake_plus_hello_bytes']:>7}  {row['hello_compressed']}")
        print(f"{'':<22} {'ratio':<14} {'':>9} {run['hello_ratio']:>7} {run['handshake_plus_hello_ratio']:>7}")


if __name__ == "__main__":
    main()
