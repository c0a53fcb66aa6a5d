"""Who an HTTP request is: an `Authorization: Bearer` token, else the session."""

from django.http import HttpRequest

from chat.domain import services
from chat.domain.auth import bearer_token
from chat.protocol.errors import ChatError


def authenticate_request(request: HttpRequest) -> str | None:
    """Set request.user from a Bearer token if one is sent, else keep the session's; return how ("bearer", "session", None).

    An unknown or revoked token raises ChatError(not_authenticated): a script that sent a
    token must not silently fall back to a browser session.
    """
    raw = bearer_token(request.headers.get("Authorization", ""))
    if raw is not None:
        user = services.token_authenticate(raw=raw)
        if user is None:
            raise ChatError("not_authenticated", "the token is unknown or revoked")
        request.user = user
        return "bearer"
    return "session" if request.user.is_authenticated else None
