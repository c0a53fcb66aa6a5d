"""WebSocket handshake checks: Origin, then session, Bearer header and ?token= auth."""

import logging
from http.cookies import SimpleCookie
from importlib import import_module
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
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


def _token_from_scope(scope) -> tuple[str | None, str | None]:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, raw = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and raw.strip():
                return raw.strip(), "bearer"
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], "query"
    return None, None


class _SessionRequest:
    """Just enough of a request for django.contrib.auth.get_user: a session."""

    def __init__(self, session):
        self.session = session


def authenticate_scope(*, session_key: str | None, raw_token: str | None):
    """Return the user of a session cookie, else of an API token, else AnonymousUser (one DB visit)."""
    if session_key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(_SessionRequest(store))
        if user.is_authenticated:
            return user, "session"
    if raw_token:
        user = services.token_authenticate(raw=raw_token)
        if user is not None:
            return user, None
    return AnonymousUser(), None


def _session_key(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
            if morsel is not None and morsel.value:
                return morsel.value
    return None


class ChatAuthMiddleware:
    """Set scope["user"] from the session cookie, then the Bearer header, then ?token=.

    Channels' AuthMiddlewareStack takes two thread hops (session store, then user) and wraps
    every send of the socket; this resolves session or token in one hop and stays out of
    the way afterwards.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        session_key = _session_key(scope)
        raw, method = _token_from_scope(scope)
        if session_key or raw:
            user, how = await database_sync_to_async(authenticate_scope)(session_key=session_key, raw_token=raw)
            if raw and not how and not user.is_authenticated:
                log.warning("ws auth failed: bad token via %s path=%s", method, scope.get("path"))
        else:
            user, how = AnonymousUser(), None
        scope = dict(scope, user=user, auth_method=how or (method if user.is_authenticated else None))
        return await self.app(scope, receive, send)


def websocket_auth_stack(app):
    """Wrap a WebSocket app in the origin check and every supported authentication."""
    return OriginCheckMiddleware(ChatAuthMiddleware(app))
