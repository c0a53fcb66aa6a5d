"""Who a request or socket is: a Django session, else an API token (protocol section 2's order)."""

import logging
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chat.domain import services

log = logging.getLogger(__name__)


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


class _SessionRequest:
    """Just enough of a request for django.contrib.auth.get_user: a session."""

    def __init__(self, session):
        self.session = session


def authenticate(credentials: Credentials) -> tuple[AbstractBaseUser, str | None]:
    """Return the user of the session, else of the API token, else AnonymousUser, and how.

    Sync (database): the room socket calls it inside the one trip to the database thread
    that also opens the room, so a handshake costs one thread hop.
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
