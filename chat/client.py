"""Command-line chat client: `python -m chat.client --url https://localhost:8443 --room lobby`.

Authenticates with a token (--token or CHAT_TOKEN), or fetches one with --username and
a password (--password or CHAT_PASSWORD). Prints every message of the room as
`[seq] user: body`, sends each line read from stdin (`/edit <seq> <text>` and `/delete <seq>`
change a message), and reconnects with ?after= and ?since= when the connection drops, so
edits and deletions made meanwhile are shown too. At the end of stdin it waits for the server to acknowledge what it
sent, then exits.
"""

import argparse
import asyncio
import json
import os
import random
import ssl
import sys
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

from chat.protocol.codes import CLOSE_SERVICE_RESTART, FINAL_CLOSE_CODES, RESTART_JITTER_SECONDS


def ssl_context(args) -> ssl.SSLContext | None:
    if urlsplit(args.url).scheme != "https":
        return None
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=args.cafile)


def fetch_token(args, context) -> str:
    password = args.password or os.environ.get("CHAT_PASSWORD", "")
    body = json.dumps({"username": args.username, "password": password, "name": "chat.client"}).encode()
    request = urllib.request.Request(
        args.url.rstrip("/") + "/api/token/", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, context=context, timeout=15) as response:
        return json.loads(response.read())["token"]


def socket_url(base: str, room: str, after: int | None, since: int | None = None) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = f"after={after}" if after is not None else ""
    if after is not None and since is not None:
        query += f"&since={since}"  # and every edit or deletion since the newest version seen
    return urlunsplit((scheme, parts.netloc, f"/ws/rooms/{room}/", query, ""))


class Client:
    def __init__(self, args, token: str, context):
        self.args, self.token, self.context = args, token, context
        self.highest: int | None = None
        self.version: int | None = None  # the room's newest version seen: edits and deletions since come back
        self.seen: dict[int, tuple[int, int]] = {}  # seq -> (message id, version shown)
        self.unacked: dict[str, dict] = {}  # client_id -> frame, resent after a reconnect
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.stdin_done = False
        self.ws = None
        self.last_close: int | None = None  # the close code of the last connection, when it was not final
        self.welcomed = asyncio.Event()  # the first hello came: `/edit <seq>` can name what it showed

    def show(self, message: dict) -> None:
        seq, version = message["seq"], message.get("version", 0)
        self.version = max(self.version or 0, version)
        known = self.seen.get(seq)
        if known is not None and known[1] >= version:
            return
        self.seen[seq] = (message["id"], version)
        self.highest = max(self.highest or 0, seq)
        if message.get("deleted"):
            line = f"[{seq}] {message['user']['username']}: (message deleted)"
        else:
            line = f"[{seq}] {message['user']['username']}: {message['body']}"
            if message.get("edited"):
                line += " (edited)"
        if message.get("attachment"):
            line += f" [file {message['attachment']['name']}]"
        print(line, flush=True)

    def frame_for(self, line: str) -> dict | None:
        """The frame a line of input asks for: a message, or `/edit <seq> <text>`, `/delete <seq>`."""
        command, _, rest = line.partition(" ")
        if command not in ("/edit", "/delete"):
            return {"type": "message", "body": line}
        seq_text, _, text = rest.strip().partition(" ")
        known = self.seen.get(int(seq_text)) if seq_text.isdigit() else None
        if known is None:
            print(f"! {command} needs the seq of a message shown here, as in `{command} 12"
                  f"{' new text' if command == '/edit' else ''}`", file=sys.stderr, flush=True)
            return None
        if command == "/delete":
            return {"type": "delete", "id": known[0]}
        if not text.strip():
            print("! /edit needs the new text after the seq", file=sys.stderr, flush=True)
            return None
        return {"type": "edit", "id": known[0], "body": text}

    async def read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        await self.welcomed.wait()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if line.strip():
                frame = self.frame_for(line.rstrip("\n"))
                if frame is None:
                    continue
                client_id = uuid.uuid4().hex
                self.unacked[client_id] = {**frame, "client_id": client_id}
                await self.outbox.put(client_id)
        self.stdin_done = True
        await self.outbox.put(None)

    async def pump_outbox(self, ws) -> None:
        for frame in list(self.unacked.values()):
            await ws.send(json.dumps(frame))
        while True:
            client_id = await self.outbox.get()
            if client_id is None:
                if not self.unacked:
                    await ws.close()
                    return
                continue
            if client_id in self.unacked:
                await ws.send(json.dumps(self.unacked[client_id]))

    async def session(self) -> int | None:
        """Run one connection; return a final close code, or None to reconnect."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url = socket_url(self.args.url, self.args.room, self.highest, self.version)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with connect(url, ssl=self.context, additional_headers=headers, open_timeout=15) as ws:
                sender = asyncio.create_task(self.pump_outbox(ws))
                try:
                    async for raw in ws:
                        frame = json.loads(raw)
                        kind = frame.get("type")
                        if kind == "hello":
                            for message in frame["messages"]:
                                self.show(message)
                            if not frame.get("truncated") and self.highest is not None:
                                # Everything up to the room's version is here now (a truncated hello is not).
                                self.version = max(self.version or 0, frame.get("last_version", 0))
                            self.welcomed.set()
                        elif kind == "message":
                            self.show(frame)
                        elif kind == "ack":
                            self.unacked.pop(frame.get("client_id"), None)
                            if self.stdin_done and not self.unacked:
                                await self.outbox.put(None)
                        elif kind == "error":
                            print(f"! {frame['code']}: {frame['detail']}", file=sys.stderr, flush=True)
                            if frame.get("client_id") in self.unacked and frame["code"] != "unavailable":
                                self.unacked.pop(frame["client_id"])  # refused for good; don't resend
                                if self.stdin_done and not self.unacked:
                                    await self.outbox.put(None)
                finally:
                    sender.cancel()
                code = ws.close_code
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        except (TimeoutError, OSError) as exc:
            self.last_close = None
            print(f"! connection failed: {exc}", file=sys.stderr, flush=True)
            return None
        if code in FINAL_CLOSE_CODES:
            return code
        self.last_close = code
        return None

    async def run(self) -> int:
        reader = asyncio.create_task(self.read_stdin())
        attempt = 0
        try:
            while True:
                code = await self.session()
                if code is not None:
                    if code != 1000:
                        print(f"! {FINAL_CLOSE_CODES[code]} ({code})", file=sys.stderr, flush=True)
                    return 0 if code == 1000 else 1
                if self.stdin_done and not self.unacked:
                    return 0
                attempt += 1
                if self.args.max_retries and attempt > self.args.max_retries:
                    return 2
                if self.last_close == CLOSE_SERVICE_RESTART:
                    # A worker restarting: reconnect at once (with jitter), not after a backoff.
                    attempt, self.last_close = 0, None
                    delay = random.random() * RESTART_JITTER_SECONDS
                else:
                    delay = 0.5 + random.random() * (min(20.0, 0.5 * 2**attempt) - 0.5)
                print(f"! reconnecting in {delay:.1f}s", file=sys.stderr, flush=True)
                await asyncio.sleep(delay)
        finally:
            reader.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat.client", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CHAT_URL", "https://localhost:8443"))
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--token", default=os.environ.get("CHAT_TOKEN"))
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--cafile", help="trust this certificate (e.g. var/tls/cert.pem)")
    parser.add_argument("--insecure", action="store_true", help="skip certificate checks")
    parser.add_argument("--max-retries", type=int, default=0, help="give up after this many reconnects (0: never)")
    args = parser.parse_args(argv)
    context = ssl_context(args)
    token = args.token or (fetch_token(args, context) if args.username else None)
    if not token:
        parser.error("give --token (or CHAT_TOKEN), or --username and a password")
    try:
        return asyncio.run(Client(args, token, context).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
