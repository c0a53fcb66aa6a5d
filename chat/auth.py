"""WebSocket handshake checks: Origin, then session, Bearer header and ?token= auth."""

import logging
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
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


class TokenAuthMiddleware:
    """Authenticate by API token when the session did not: Bearer header first, then ?token=."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            scope = dict(scope, auth_method="session")
        else:
            raw, method = _token_from_scope(scope)
            if raw is not None:
                token_user = await database_sync_to_async(services.token_authenticate)(raw=raw)
                if token_user is not None:
                    scope = dict(scope, user=token_user, auth_method=method)
                else:
                    log.warning("ws auth failed: bad token via %s path=%s", method, scope.get("path"))
        return await self.app(scope, receive, send)


def websocket_auth_stack(app):
    """Wrap a WebSocket app in the origin check and every supported authentication."""
    return OriginCheckMiddleware(AuthMiddlewareStack(TokenAuthMiddleware(app)))
