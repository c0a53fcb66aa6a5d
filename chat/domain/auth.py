"""Who a request or socket is: a Django session, else an API token (protocol section 2's order)."""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chat.domain import services
from chat.store import queries

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


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a socket is, and what let it in: the session or the token whose end must close it."""

    user: AbstractBaseUser
    how: str | None = None  # "session", "bearer", "query" or None
    session_key: str | None = None
    session_expires: datetime | None = None
    token_id: int | None = None


def authenticate(credentials: Credentials) -> Identity:
    """Return the user of the session, else of the API token, else AnonymousUser, and what let them in.

    Sync (database): the room socket calls it inside the one trip to the database thread
    that also opens the room, so a handshake costs one thread hop.
    """
    if credentials.session_key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(credentials.session_key)
        user = get_user(_SessionRequest(store))
        if user.is_authenticated:
            return Identity(user=user, how="session", session_key=credentials.session_key,
                            session_expires=queries.session_expiry(session_key=credentials.session_key))
    if credentials.token:
        found = services.token_identify(raw=credentials.token)
        if found is not None:
            return Identity(user=found[0], how=credentials.token_via, token_id=found[1])
        log.warning("ws auth failed: bad token via %s", credentials.token_via)
    return Identity(user=AnonymousUser())


def session_user_id(*, session_key: str) -> int | None:
    """Return the id of the user a session still authenticates (live, not expired, hash valid), or None."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(_SessionRequest(store))
    return user.pk if user.is_authenticated else None


def session_digest(session_key: str) -> str:
    """Name a session in cross-worker events without sending its key."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]
