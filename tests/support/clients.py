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

CREATE_USER = (
    "import json; from django.contrib.auth import get_user_model; from chat.domain import services;"
    "u = get_user_model().objects.create_user({username!r}, password={password!r});"
    "t = services.token_create(user=u, name='test')[1];"
    "print(json.dumps({{'id': u.pk, 'username': u.username, 'token': t}}))"
)


def create_user(manage, username: str, password: str) -> dict:
    """Create a user and a token through `manage.py shell` of a running deployment."""
    out = manage("shell", "--no-startup", "-c", CREATE_USER.format(username=username, password=password))
    return json.loads(out.strip().splitlines()[-1])


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


def https_login(origin: str, username: str, password: str, *, ssl_context: ssl.SSLContext,
                user_agent: str = "tests") -> str:
    """Log in through the real login page over TLS; return the session cookie."""
    url = urlsplit(origin)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ssl_context, timeout=10)
    conn.request("GET", "/accounts/login/", headers={"User-Agent": user_agent})
    page = conn.getresponse()
    body = page.read().decode()
    cookies = SimpleCookie()
    for header in page.headers.get_all("Set-Cookie"):
        cookies.load(header)
    csrf_form = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    form = f"username={username}&password={password}&csrfmiddlewaretoken={csrf_form}"
    conn.request(
        "POST",
        "/accounts/login/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken'].value}",
            "Origin": origin,
            "Referer": origin + "/accounts/login/",
            "User-Agent": user_agent,
        },
    )
    response = conn.getresponse()
    response.read()
    assert response.status == 302, response.status
    for header in response.headers.get_all("Set-Cookie"):
        cookies.load(header)
    conn.close()
    return cookies["sessionid"].value
