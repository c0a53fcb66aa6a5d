"""Helpers of the browser tier: users made in one go, another user acting over a real socket, a cuttable socket."""

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

from tests.support.clients import http_json, recv_type, ws_connect

MAKE_USERS = (
    "import json; from django.contrib.auth import get_user_model; from chat.domain import services;"
    "U = get_user_model(); out = {{}}\n"
    "for name in {names!r}:\n"
    "    u = U.objects.create_user(name, password={password!r})\n"
    "    out[name] = {{'id': u.pk, 'username': name, 'token': services.token_create(user=u, name='browser')[1]}}\n"
    "print(json.dumps(out))"
)


def make_users(server, *names: str, password: str) -> dict[str, dict]:
    """Create users in one `manage.py shell` run; return name -> {id, username, token}."""
    return server.run_python(MAKE_USERS.format(names=list(names), password=password))




def in_a_thread(coro):
    """Run a coroutine to completion on its own loop (Playwright's sync API holds this thread's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


class Remote:
    """Another user acting through a real room socket (Bearer token), one short connection per call."""

    def __init__(self, server, user: dict):
        self.server = server
        self.user = user
        self._n = 0

    def _client_id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self.user['username']}-{self._n}"

    async def _call(self, slug: str, frame: dict | None) -> dict:
        async with ws_connect(f"{self.server.ws_origin}/ws/rooms/{slug}/", token=self.user["token"],
                              ssl_context=self.server.ssl_context()) as ws:
            hello = await recv_type(ws, "hello")
            if frame is None:
                return hello
            await ws.send(json.dumps(frame))
            return await recv_type(ws, "ack")

    def create_room(self, slug: str, name: str, *, private: bool = False) -> None:
        status, body = http_json("POST", f"{self.server.origin}/api/rooms/", token=self.user["token"],
                                 body={"slug": slug, "name": name, "private": private},
                                 ssl_context=self.server.ssl_context())
        assert status == 201, body

    def visit(self, slug: str) -> dict:
        """Open the room's socket once (which joins a public room); return its hello."""
        return in_a_thread(self._call(slug, None))

    def post(self, slug: str, body: str) -> dict:
        """Send a message; return its ack ({id, seq, client_id})."""
        return in_a_thread(self._call(slug, {"type": "message", "body": body, "client_id": self._client_id("m")}))

    def edit(self, slug: str, message_id: int, body: str) -> dict:
        return in_a_thread(self._call(slug, {"type": "edit", "id": message_id, "body": body,
                                             "client_id": self._client_id("e")}))

    def delete(self, slug: str, message_id: int) -> dict:
        return in_a_thread(self._call(slug, {"type": "delete", "id": message_id, "client_id": self._client_id("d")}))

    async def _post_many(self, slug: str, bodies: list[str]) -> list[dict]:
        async with ws_connect(f"{self.server.ws_origin}/ws/rooms/{slug}/", token=self.user["token"],
                              ssl_context=self.server.ssl_context()) as ws:
            await recv_type(ws, "hello")
            ids = [self._client_id("m") for _ in bodies]
            for body, client_id in zip(bodies, ids, strict=True):
                await ws.send(json.dumps({"type": "message", "body": body, "client_id": client_id}))
            acks = {}
            while len(acks) < len(ids):
                ack = await recv_type(ws, "ack")
                acks[ack["client_id"]] = ack
            return [acks[client_id] for client_id in ids]

    def post_many(self, slug: str, bodies: list[str]) -> list[dict]:
        """Send messages over one connection (mind the server's rate limit); return their acks in order."""
        return in_a_thread(self._post_many(slug, bodies))

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Call the JSON API as this user (Bearer token); return (status, body)."""
        return http_json(method, f"{self.server.origin}{path}", token=self.user["token"], body=body,
                         ssl_context=self.server.ssl_context())

    def open_dm(self, username: str) -> dict:
        """Open (or make) the DM with `username`; return its room state for this user."""
        status, state = self.api("POST", "/api/dms/", {"username": username})
        assert status in (200, 201), state
        return state


# Stands in for the browser's Notification (headless Chromium has no notification service): it
# records permission requests and the notifications made, each with the onclick the page set.
NOTIFICATION_STUB = """
(() => {
  const record = { requests: 0, made: [] };
  window.__notifications = record;
  class RecordedNotification {
    static permission = 'default';
    static requestPermission() {
      record.requests += 1;
      RecordedNotification.permission = 'granted';
      return Promise.resolve('granted');
    }
    constructor(title, options = {}) {
      this.title = title;
      this.body = options.body;
      this.onclick = null;
      this.closed = false;
      record.made.push(this);
    }
    close() { this.closed = true; }
  }
  window.Notification = RecordedNotification;
})();
"""

# The tab as the page sees it when the reader has switched to another one, and back.
HIDE_PAGE = """() => {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW_PAGE = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event('visibilitychange'));
}"""


class SocketTap:
    """Route a page's room sockets through Playwright: record what the page sends, cut the line at will.

    While cut, every new connection is closed at once, as a dead network would; `restore()` lets them through.
    """

    def __init__(self, page, pattern: str = r"/ws/rooms/"):
        self.sent: list[dict] = []
        self.urls: list[str] = []
        self.cut_now = False
        self._open = []
        page.route_web_socket(re.compile(pattern), self._route)

    def _route(self, ws):
        self.urls.append(ws.url)
        if self.cut_now:
            ws.close(code=4000, reason="offline")
            return
        upstream = ws.connect_to_server()
        pair = (ws, upstream)
        self._open.append(pair)

        def from_page(message):
            if isinstance(message, str):
                self.sent.append(json.loads(message))
            upstream.send(message)

        def closed_by_page(code, reason):
            # With a close handler set, Playwright forwards nothing: the server must hear of it too.
            if pair in self._open:
                self._open.remove(pair)
            upstream.close(code=code, reason=reason)

        ws.on_message(from_page)
        ws.on_close(closed_by_page)

    def cut(self) -> None:
        self.cut_now = True
        for ws, upstream in list(self._open):
            ws.close(code=4000, reason="offline")
            upstream.close()
        self._open.clear()

    def restore(self) -> None:
        self.cut_now = False

    @property
    def open_count(self) -> int:
        return len(self._open)

    def frames(self, kind: str) -> list[dict]:
        return [frame for frame in self.sent if frame.get("type") == kind]
