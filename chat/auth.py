"""WebSocket handshake checks: the Origin, then a session, a Bearer header or ?token=."""

import logging
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import import_module
from urllib.parse import parse_qs, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http.request import split_domain_port, validate_host

from chat import services

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


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a handshake offers to authenticate with: a session key and/or an API token."""

    session_key: str | None = None
    token: str | None = None
    token_via: str | None = None  # "bearer" or "query"

    def __bool__(self) -> bool:
        return bool(self.session_key or self.token)


def bearer_token(authorization: str) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, raw = authorization.partition(" ")
    return raw.strip() if scheme.lower() == "bearer" and raw.strip() else None


def credentials_from_scope(scope) -> Credentials:
    """Read the session cookie, the Bearer header and ?token= from a scope (no database)."""
    session_key = token = via = None
    for name, value in scope.get("headers", ()):
        if name == b"cookie" and session_key is None:
            morsel = SimpleCookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
            if morsel is not None and morsel.value:
                session_key = morsel.value
        elif name == b"authorization" and token is None:
            token = bearer_token(value.decode("latin-1"))
            via = "bearer" if token else None
    if token is None and b"token=" in scope.get("query_string", b""):
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if query.get("token"):
            token, via = query["token"][0], "query"
    return Credentials(session_key=session_key, token=token, token_via=via)


class _SessionRequest:
    """Just enough of a request for django.contrib.auth.get_user: a session."""

    def __init__(self, session):
        self.session = session


def authenticate(credentials: Credentials) -> tuple[AbstractBaseUser, str | None]:
    """Return the user of the session, else of the API token, else AnonymousUser, and how.

    Sync (database): the room socket calls it inside the one trip to the database thread
    that also opens the room, so a handshake costs one thread hop, not two.
    """
    if credentials.session_key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(credentials.session_key)
        user = get_user(_SessionRequest(store))
        if user.is_authenticated:
            return user, "session"
    if credentials.token:
        user = services.token_authenticate(raw=credentials.token)
        if user is not None:
            return user, credentials.token_via
        log.warning("ws auth failed: bad token via %s", credentials.token_via)
    return AnonymousUser(), None


def websocket_auth_stack(app):
    """Wrap a WebSocket app in the origin check; the app authenticates (chat.auth.authenticate)."""
    return OriginCheckMiddleware(app)
