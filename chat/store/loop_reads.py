"""Handshake reads on the event loop's own SQLite connection, with no trip to the database thread.

A room socket's handshake reads three or four rows (the token or session and its user, the
room with the caller's membership, hello's page of messages). On SQLite the statements take
tens of microseconds; the trip to Django's database thread around them (SyncToAsync, the
executor, the loop's wake-up, Django's cursor wrappers) cost several times that
(bench/FINDINGS.md, session 6). On SQLite in WAL mode a reader never waits for the writer,
so these reads run on the loop itself, on a read-only connection of its own.

Only reads run here. Whatever needs more (a write, such as joining a public room or marking
a token used; the ORM; Django's own session checks) raises before it does anything: the
ORM's async guard (SynchronousOnlyOperation) or NeedsThread. run() then answers None and the
caller makes the usual trip to the database thread, which repeats the reads: they are safe
to repeat. PostgreSQL and other databases always take the thread (None at once).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connections

log = logging.getLogger(__name__)
T = TypeVar("T")

# Set while a read runs on the loop: chat.store.queries takes its cursor from here.
LOOP_CURSOR: ContextVar[_Cursor | None] = ContextVar("chat_loop_cursor", default=None)

_local = threading.local()


class NeedsThread(Exception):  # noqa: N818 - a signal to the caller, not an error
    """The read needs more than the loop's read-only connection gives: take the database thread."""


@lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    # Django's SQLite backend does the same conversion of its %s placeholders.
    return re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")


@lru_cache(maxsize=1)
def _wrapper():
    """A Django DatabaseWrapper that never connects: the loop's reads take its ops and alias.

    `django.db.connection` is looked up per context, so each socket task that touched it
    (for `connection.ops`, say) made and kept a DatabaseWrapper of its own: ~4 KB per idle
    socket (tracemalloc). One shared, unconnected wrapper answers the same.
    """
    return connections.create_connection(DEFAULT_DB_ALIAS)


class _Cursor:
    """A DB-API cursor over the loop's connection that takes Django's %s placeholders.

    `db` stands in for `django.db.connection` in what the reads ask of it (ops, alias).
    """

    __slots__ = ("raw", "db")

    def __init__(self, raw: sqlite3.Cursor) -> None:
        self.raw = raw
        self.db = _wrapper()

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def execute(self, sql: str, params=()) -> None:
        self.raw.execute(_qmark(sql), params)

    def fetchone(self):
        return self.raw.fetchone()

    def fetchall(self):
        return self.raw.fetchall()


def _database() -> dict:
    # Django's DATABASES entry, which the connection's settings_dict is (the test runner
    # renames both). Read directly: `connection` goes through a per-context lookup.
    return connections.settings[DEFAULT_DB_ALIAS]


def enabled() -> bool:
    """Tell whether handshake reads may run on the loop: Django's own SQLite backend, and not switched off."""
    return settings.CHAT_LOOP_READS and _database()["ENGINE"] == "django.db.backends.sqlite3"


def _connection(name: str) -> sqlite3.Connection:
    """This thread's (the loop's) read-only connection to Django's database file."""
    held = getattr(_local, "held", None)
    if held is not None and held[0] == name:
        return held[1]
    if held is not None:
        held[1].close()  # the test runner switched databases
    # No busy wait on the loop: a reader that meets a lock goes to the thread instead.
    conn = sqlite3.connect(name, timeout=0, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA query_only = ON")
    _local.held = (name, conn)
    return conn


def run(read: Callable[..., T], **kwargs) -> T | None:
    """Run a read-only database function on the loop's connection; None if it needs the database thread."""
    if not enabled():
        return None
    name = str(_database()["NAME"])
    if name.startswith(("file:", ":memory:")):
        return None  # a memory database is one connection's own
    token = LOOP_CURSOR.set(_Cursor(_connection(name).cursor()))
    try:
        return read(**kwargs)
    except (SynchronousOnlyOperation, NeedsThread):
        return None
    except sqlite3.Error as exc:  # a busy database, a schema the loop's connection has not seen
        log.debug("loop read %s went to the database thread: %s", getattr(read, "__name__", read), exc)
        return None
    finally:
        LOOP_CURSOR.reset(token)


def on_loop() -> bool:
    """Tell whether the caller runs inside run() (a read that may not write)."""
    return LOOP_CURSOR.get() is not None
