"""Who is online in each room: a small swappable store chosen by CHAT_PRESENCE_BACKEND."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from chat.presence.base import PresenceChange, PresenceStore


@cache
def _store(path: str) -> PresenceStore:
    return import_string(path)()


def get_presence_store() -> PresenceStore:
    """Return the process-wide presence store named by settings."""
    return _store(settings.CHAT_PRESENCE_BACKEND)


__all__ = ["PresenceChange", "PresenceStore", "get_presence_store"]
