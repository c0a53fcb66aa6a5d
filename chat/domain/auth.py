"""Who a request or socket is: a Django session, else an API token (protocol section 2's order)."""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import import_module
from types import MappingProxyType

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare

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
        found = session_user(session_key=credentials.session_key)
        if found is not None:
            user, expires = found
            return Identity(user=user, how="session", session_key=credentials.session_key, session_expires=expires)
    if credentials.token:
        found = services.token_identify(raw=credentials.token)
        if found is not None:
            return Identity(user=found[0], how=credentials.token_via, token_id=found[1])
        log.warning("ws auth failed: bad token via %s", credentials.token_via)
    return Identity(user=AnonymousUser())


def session_user_id(*, session_key: str) -> int | None:
    """Return the id of the user a session still authenticates (live, not expired, hash valid), or None."""
    found = session_user(session_key=session_key)
    return found[0].pk if found is not None else None


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
DB_SESSIONS = "django.contrib.sessions.backends.db"


def session_user(*, session_key: str) -> tuple[AbstractBaseUser, datetime | None] | None:
    """Return the user a session authenticates and when the session expires, or None.

    The checks of django.contrib.auth.get_user, in two hand-written queries (the session,
    then the user) instead of three through the ORM. The common case only: database
    sessions, the model backend and a session hash that matches the user's current one.
    Anything else (another engine or backend, a hash that only a SECRET_KEY_FALLBACKS key
    matches) goes to Django's own get_user, so the answer is always Django's
    (tests/unit/test_session_auth.py compares the two).
    """
    if settings.SESSION_ENGINE != DB_SESSIONS:
        return _session_user_django(session_key)
    row = queries.session_row(session_key=session_key, now=timezone.now())
    if row is None:
        return None  # no such session, or expired: Django's store finds nothing either
    encoded, expires = row
    data = session_data(encoded)  # {} if tampered with
    user_id, backend = data.get(SESSION_KEY), data.get(BACKEND_SESSION_KEY)
    if user_id is None or backend not in settings.AUTHENTICATION_BACKENDS:
        return None
    if backend != MODEL_BACKEND:
        return _session_user_django(session_key)
    try:
        pk = get_user_model()._meta.pk.to_python(user_id)
    except ValidationError:
        return None
    user = queries.user_for_session(user_id=pk)
    if user is None or not user.is_active:  # ModelBackend.get_user: user_can_authenticate
        return None
    session_hash = data.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return _session_user_django(session_key)  # fallback keys, or Django's verdict on a stale hash
    return user, expires


@lru_cache(maxsize=1024)
def session_data(encoded: str) -> MappingProxyType:
    """Return a database session's stored data, decoded (read-only); {} if its signature fails.

    Decoding checks an HMAC and parses JSON, ~40 us, and every socket a browser opens reads
    the same row: the decoded data is kept by the exact stored text, which changes whenever
    the session is saved. It depends on nothing else (SECRET_KEY is fixed per process).
    """
    return MappingProxyType(import_module(DB_SESSIONS).SessionStore().decode(encoded))


@receiver(setting_changed)
def _forget_session_data(*, setting, **kwargs) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "SESSION_SERIALIZER"):  # tests change them
        session_data.cache_clear()


def _session_user_django(session_key: str) -> tuple[AbstractBaseUser, datetime | None] | None:
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(_SessionRequest(store))
    if not user.is_authenticated:
        return None
    return user, queries.session_expiry(session_key=session_key)


def session_digest(session_key: str) -> str:
    """Name a session in cross-worker events without sending its key."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]
