"""The database connection of Django's database thread, as the socket paths use it."""

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_reconnecting_once(read: Callable[..., T], **kwargs) -> T:
    """Run a read-only database function; if the connection was dropped (a database restart), reconnect and run it again.

    Reused connections are not checked before use (DATABASE_HEALTH_CHECKS is off), so the
    first statement after a database restart fails. A read is safe to repeat, and the
    second try spares the client a 1011 and a backoff.
    """
    try:
        return read(**kwargs)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        log.warning("database connection lost during %s; reconnecting once", getattr(read, "__name__", read))
        connection.close()
        return read(**kwargs)
