"""WebSocket and HTTP clients for the live and cluster tiers."""

import asyncio
import http.client
import json
import re
import ssl
import urllib.request
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

CREATE_USERS = (
    "import json; from django.contrib.auth import get_user_model; from chat.domain import services\n"
    "made = []\n"
    "for name in {usernames!r}:\n"
    "    u = get_user_model().objects.create_user(name, password={password!r})\n"
    "    made.append({{'id': u.pk, 'username': u.username, 'token': services.token_create(user=u, name='test')[1]}})\n"
    "print(json.dumps(made))"
)


def create_users(manage, usernames: list[str], password: str) -> list[dict]:
    """Create users, each with a token, in one `manage.py shell` of a running deployment (one Django start-up)."""
    out = manage("shell", "--no-startup", "-c", CREATE_USERS.format(usernames=list(usernames), password=password))
    return json.loads(out.strip().splitlines()[-1])


def create_user(manage, username: str, password: str) -> dict:
    """Create a user and a token through `manage.py shell` of a running deployment."""
    return create_users(manage, [username], password)[0]


def ws_connect(url: str, *, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
               additional_headers: dict | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(url, ssl=ssl_context, additional_headers={**headers, **(additional_headers or {})},
                   open_timeout=10, close_timeout=5, **kwargs)


async def recv_json(ws: ClientConnection, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 10) -> dict:
    """Receive until a frame of this type; an error frame fails the test."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            assert frame["type"] != "error", frame
            if frame["type"] == kind:
                return frame


def http_json(method: str, url: str, *, token: str, body: dict | None = None, ssl_context=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, context=ssl_context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def login_through_page(conn: http.client.HTTPConnection, origin: str, username: str, password: str, *,
                       headers: dict | None = None) -> tuple[str, str]:
    """Log in through the real login page on conn; return (sessionid, csrftoken)."""
    base = headers or {}
    conn.request("GET", "/accounts/login/", headers=base)
    page = conn.getresponse()
    body = page.read().decode()
    cookies = SimpleCookie()
    for header in page.headers.get_all("Set-Cookie"):
        cookies.load(header)
    csrf_form = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    conn.request("POST", "/accounts/login/", body=f"username={username}&password={password}&csrfmiddlewaretoken={csrf_form}",
                 headers={**base, "Content-Type": "application/x-www-form-urlencoded",
                          "Cookie": f"csrftoken={cookies['csrftoken'].value}", "Origin": origin,
                          "Referer": origin + "/accounts/login/"})
    response = conn.getresponse()
    response.read()
    assert response.status == 302, response.status
    for header in response.headers.get_all("Set-Cookie"):
        cookies.load(header)
    conn.close()
    return cookies["sessionid"].value, cookies["csrftoken"].value


def https_login(origin: str, username: str, password: str, *, ssl_context: ssl.SSLContext,
                user_agent: str = "tests") -> str:
    """Log in through the real login page over TLS; return the session cookie."""
    url = urlsplit(origin)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ssl_context, timeout=10)
    return login_through_page(conn, origin, username, password, headers={"User-Agent": user_agent})[0]


def room_messages_all(origin: str, slug: str, *, token: str, ssl_context=None) -> list[dict]:
    """Every stored message of a room, oldest first, paged through the HTTP API."""
    messages: list[dict] = []
    after = 0
    while True:
        status, page = http_json("GET", f"{origin}/api/rooms/{slug}/messages/?after={after}&limit=100", token=token,
                                 ssl_context=ssl_context)
        assert status == 200, page
        messages += page["messages"]
        if not page["has_more"]:
            return messages
        after = messages[-1]["seq"]
