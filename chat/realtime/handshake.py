"""WebSocket handshake checks: the Origin, and the credentials a socket offers (read, not yet checked)."""

import logging
from urllib.parse import parse_qs, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from chat.domain.auth import Credentials, bearer_token

log = logging.getLogger(__name__)


def origin_allowed(origin: str | None) -> bool:
    """Admit a missing Origin (non-browser clients); a present one must name an allowed host."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return False
    host, _port = split_domain_port(parts.netloc)
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class OriginCheckMiddleware:
    """Refuse the handshake (HTTP 403) when the Origin names a foreign host."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        origin = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        if not origin_allowed(origin):
            log.warning("ws refused: foreign origin %r path=%s", origin, scope.get("path"))
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


def credentials_from_scope(scope) -> Credentials:
    """Read the session cookie, the Bearer header and ?token= from a scope (no database)."""
    session_key = token = via = None
    for name, value in scope.get("headers", ()):
        if name == b"cookie" and session_key is None:
            # Django's own reading of a Cookie header, as for its HTTP requests' COOKIES.
            session_key = parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME) or None
        elif name == b"authorization" and token is None:
            token = bearer_token(value.decode("latin-1"))
            via = "bearer" if token else None
    if token is None and b"token=" in scope.get("query_string", b""):
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if query.get("token"):
            token, via = query["token"][0], "query"
    return Credentials(session_key=session_key, token=token, token_via=via)
