"""Hand-written SQL for the statements every handshake and every message runs.

For these, the ORM spends more time building and compiling a query than the database
spends running it (figures in bench/FINDINGS.md). The statements are built once per
process from the models' own table and column names, so a renamed field still lands here;
they run unchanged on SQLite (3.35+, for RETURNING) and PostgreSQL: the token lookup, the
room with the caller's membership, the seq bump, the message insert and the batch store.
Everything off these paths (pages of history, the API, the admin) stays on the ORM.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import psycopg
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from chat.models import ApiToken, Attachment, Membership, Message, Room
from chat.store.loop_reads import LOOP_CURSOR

# Room fields a socket needs (the rest load on access, from sync code only).
ROOM_FIELDS = ("id", "slug", "name", "private", "dm", "created", "last_seq", "last_version", "created_by")


def _select_list(model, alias: str, fields) -> tuple[list[str], str]:
    """Return the attnames Model.from_db takes and the matching SELECT columns, in the model's order.

    Model.from_db reads values in the model's field order, whatever order the names come in.
    """
    wanted = set(fields)
    ordered = [f for f in model._meta.concrete_fields if f.name in wanted]
    return [f.attname for f in ordered], ", ".join(f"{alias}.{_q(f.column)}" for f in ordered)


def _q(name: str) -> str:
    return _db().ops.quote_name(name)


def _table(model) -> str:
    return _q(model._meta.db_table)


def _col(model, field: str) -> str:
    return _q(model._meta.get_field(field).column)


def _reader():
    """The cursor for a read: the event loop's own inside a loop read (chat/store/loop_reads.py), else Django's."""
    return LOOP_CURSOR.get() or connection.cursor()


def _db():
    """Django's connection, or inside a loop read the stand-in that never makes one per socket task."""
    loop_cursor = LOOP_CURSOR.get()
    return connection if loop_cursor is None else loop_cursor.db


@cache
def _token_user_sql() -> tuple[str, list[str]]:
    user_model = get_user_model()
    names, columns = _select_list(user_model, "u", [user_model._meta.pk.name, user_model.USERNAME_FIELD])
    sql = (
        f"SELECT t.{_col(ApiToken, 'id')}, (t.{_col(ApiToken, 'last_used')} IS NULL"
        f" OR t.{_col(ApiToken, 'last_used')} < %s), {columns}"
        f" FROM {_table(ApiToken)} t JOIN {_table(user_model)} u"
        f" ON u.{_q(user_model._meta.pk.column)} = t.{_col(ApiToken, 'user')}"
        f" WHERE t.{_col(ApiToken, 'digest')} = %s AND t.{_col(ApiToken, 'revoked')} = %s"
        f" AND u.{_q(user_model._meta.get_field('is_active').column)} = %s"
    )
    return sql, names


def token_user(*, digest: str, stale_before: datetime) -> tuple[int, bool, AbstractBaseUser] | None:
    """Return (token id, last_used older than stale_before, user) of a live token and active user."""
    sql, names = _token_user_sql()
    with _reader() as cursor:
        cursor.execute(sql, [_db().ops.adapt_datetimefield_value(stale_before), digest, False, True])
        row = cursor.fetchone()
    if row is None:
        return None
    # Only the id and username are loaded; any other field loads on first access.
    user = get_user_model().from_db(_db().alias, names, row[2:])
    return row[0], bool(row[1]), user


@cache
def _room_sql() -> tuple[str, list[str]]:
    names, columns = _select_list(Room, "r", ROOM_FIELDS)
    sql = (
        f"SELECT {columns}, (SELECT m.{_col(Membership, 'last_read')} FROM {_table(Membership)} m"
        f" WHERE m.{_col(Membership, 'room')} = r.{_col(Room, 'id')} AND m.{_col(Membership, 'user')} = %s)"
        f" FROM {_table(Room)} r WHERE r.{_col(Room, 'slug')} = %s"
    )
    return sql, names


def room_with_membership(*, slug: str, user_id: int) -> tuple[Room, int | None] | None:
    """Return the room with this slug and the user's read cursor in it (None: not a member), or None."""
    sql, names = _room_sql()
    with _reader() as cursor:
        cursor.execute(sql, [user_id, slug])
        row = cursor.fetchone()
    if row is None:
        return None
    room = Room.from_db(_db().alias, names, row[:-1])
    # A raw cursor skips the backend's converters: SQLite hands back 0/1 and naive times (in UTC).
    room.private, room.dm = bool(room.private), bool(room.dm)
    room.created = _aware(room.created)
    return room, row[-1]


@cache
def _message_sql() -> tuple[str, str]:
    fields = ("room", "seq", "version", "user", "body", "client_id", "created", "mentions")
    insert = (
        f"INSERT INTO {_table(Message)} ({', '.join(_col(Message, f) for f in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {_col(Message, 'id')}"
    )
    exists = (
        f"SELECT 1 FROM {_table(Message)} WHERE {_col(Message, 'room')} = %s"
        f" AND {_col(Message, 'user')} = %s AND {_col(Message, 'client_id')} = %s"
    )
    return insert, exists


def message_insert(*, room_id: int, seq: int, version: int, user_id: int, body: str, client_id: str | None,
                   created: datetime, mentions: str = "") -> int:
    """Insert a message row and return its id."""
    insert, _ = _message_sql()
    with connection.cursor() as cursor:
        cursor.execute(insert, [room_id, seq, version, user_id, body, client_id,
                                connection.ops.adapt_datetimefield_value(created), mentions])
        return cursor.fetchone()[0]


def messages_store(*, groups: dict[int, list[tuple[int, str, str | None, str]]], created: datetime
                   ) -> dict[int, list[tuple[int, int, int]]]:
    """Store new messages, grouped by room id as (user_id, body, client_id, mentions); return {room_id: [(id, seq, version)]}.

    One transaction: each room's last_seq goes up by its count (rooms in id order, so two
    concurrent batches cannot deadlock) and the rows get the seqs in order. A room that no
    longer exists is left out of the answer; a client_id the user already stored in the
    room fails the whole transaction with IntegrityError (the caller stores one by one).
    """
    rooms = sorted(groups)
    when = connection.ops.adapt_datetimefield_value(created)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # One round trip: one statement, which is all or nothing on its own.
        sql, params = _messages_store_pg(rooms, groups, when)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
    else:
        with transaction.atomic():
            bumped = [room for room in rooms if seq_bump(room_id=room, count=len(groups[room])) is not None]
            returned = []
            if bumped:
                sql, params = _insert_sql(bumped, groups, when)
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    returned = cursor.fetchall()
    return _by_room(returned)


async def messages_store_async(conn, *, groups: dict[int, list[tuple[int, str, str | None, str]]], created: datetime
                               ) -> dict[int, list[tuple[int, int, int]]]:
    """messages_store on PostgreSQL, from the event loop (chat/store/writer.py's own connection).

    conn is a psycopg AsyncConnection in autocommit mode: one statement, one round trip, its
    own transaction. Its parameters are bound by the server, so psycopg prepares it after a
    few batches and each batch then sends only the arrays.
    """
    sql, params = _messages_store_pg(sorted(groups), groups, connection.ops.adapt_datetimefield_value(created))
    async with psycopg.AsyncCursor(conn) as cursor:
        await cursor.execute(sql, params)
        return _by_room(await cursor.fetchall())


def _by_room(returned) -> dict[int, list[tuple[int, int, int]]]:
    """Group RETURNING rows (id, room_id, seq, version) by room, in seq order."""
    stored: dict[int, list[tuple[int, int, int]]] = {}
    for message_id, room_id, seq, version in sorted(returned, key=lambda row: (row[1], row[2])):
        stored.setdefault(room_id, []).append((message_id, seq, version))
    return stored


@cache
def _bump_sql() -> str:
    # A new message takes the next seq and the next version of its room.
    seq, version = _col(Room, "last_seq"), _col(Room, "last_version")
    return f"UPDATE {_table(Room)} SET {seq} = {seq} + %s, {version} = {version} + %s" \
           f" WHERE {_col(Room, 'id')} = %s RETURNING {seq}, {version}"


def seq_bump(*, room_id: int, count: int) -> tuple[int, int] | None:
    """Add count to the room's last_seq and last_version; return both (None: no such room). The row stays locked until commit."""
    with connection.cursor() as cursor:
        cursor.execute(_bump_sql(), [count, count, room_id])
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


@cache
def _version_bump_sql() -> str:
    version = _col(Room, "last_version")
    return (f"UPDATE {_table(Room)} SET {version} = {version} + 1 WHERE {_col(Room, 'id')} = %s"
            f" RETURNING {version}")


def version_bump(*, room_id: int) -> int | None:
    """Take the room's next version for an edit or a deletion (None: no such room); the row stays locked until commit."""
    with connection.cursor() as cursor:
        cursor.execute(_version_bump_sql(), [room_id])
        row = cursor.fetchone()
    return None if row is None else row[0]


def _insert_sql(rooms: list[int], groups: dict, when) -> tuple[str, list]:
    """INSERT ... SELECT from the rows, seqs counted back from each room's (already bumped) last_seq."""
    values, params = [], []
    for room_id in rooms:
        rows = groups[room_id]
        for k, (user_id, body, client_id, mentions) in enumerate(rows):
            values.append("(%s, %s, %s, %s, %s, %s)")
            params += [room_id, len(rows) - k, user_id, body, client_id, mentions]
    params.append(when)
    fields = ("room", "seq", "version", "user", "body", "client_id", "mentions", "created")
    last_seq, last_version = _col(Room, "last_seq"), _col(Room, "last_version")
    sql = (
        f"WITH v(room_id, back, user_id, body, client_id, mentions) AS (VALUES {', '.join(values)})"
        f" INSERT INTO {_table(Message)} ({', '.join(_col(Message, f) for f in fields)})"
        f" SELECT v.room_id, r.{last_seq} - v.back + 1, r.{last_version} - v.back + 1, v.user_id, v.body,"
        f" v.client_id, v.mentions, %s"
        f" FROM v JOIN {_table(Room)} r ON r.{_col(Room, 'id')} = v.room_id"
        # Ids follow the seqs; the rows come back keyed by (room, seq), as RETURNING's order is not promised.
        f" ORDER BY v.room_id, v.back DESC"
        f" RETURNING {_col(Message, 'id')}, {_col(Message, 'room')}, {_col(Message, 'seq')}, {_col(Message, 'version')}"
    )
    return sql, params


@cache
def _store_pg_sql() -> str:
    """The whole batch as one statement of fixed text: lock the rooms in id order, bump them, insert the rows.

    The rows travel as arrays, so the text never changes with the batch: psycopg parses it
    once (a text built per batch, with 6 parameters a row, was ~6% of a worker's samples on
    100 x 10) and PostgreSQL prepares it once per connection. Rooms are locked in id order
    first, so two concurrent batches cannot deadlock; each room's last_seq and last_version
    go up by its count, and its rows take the seqs in order, counted back from the new last_seq.
    A room that no longer exists is not bumped and its rows are not inserted.
    """
    room_id, seq, version = _col(Room, "id"), _col(Room, "last_seq"), _col(Room, "last_version")
    fields = ("room", "seq", "version", "user", "body", "client_id", "mentions", "created")
    return (
        f"WITH locked AS (SELECT {room_id} FROM {_table(Room)} WHERE {room_id} = ANY(%s::bigint[])"
        f" ORDER BY {room_id} FOR NO KEY UPDATE),"
        f" bumped AS (UPDATE {_table(Room)} r SET {seq} = r.{seq} + c.n, {version} = r.{version} + c.n"
        f" FROM unnest(%s::bigint[], %s::integer[]) AS c(room_id, n)"
        f" WHERE r.{room_id} = c.room_id AND r.{room_id} IN (SELECT {room_id} FROM locked)"
        f" RETURNING r.{room_id} AS room_id, r.{seq} AS last_seq, r.{version} AS last_version)"
        f" INSERT INTO {_table(Message)} ({', '.join(_col(Message, f) for f in fields)})"
        f" SELECT v.room_id, b.last_seq - v.back + 1, b.last_version - v.back + 1, v.user_id, v.body,"
        f" v.client_id, v.mentions, %s"
        f" FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::text[], %s::text[], %s::text[])"
        f" AS v(room_id, back, user_id, body, client_id, mentions)"
        f" JOIN bumped b ON b.room_id = v.room_id"
        f" ORDER BY v.room_id, v.back DESC"
        f" RETURNING {_col(Message, 'id')}, {_col(Message, 'room')}, {_col(Message, 'seq')}, {_col(Message, 'version')}"
    )


def _messages_store_pg(rooms: list[int], groups: dict, when) -> tuple[str, list]:
    counts = [len(groups[room_id]) for room_id in rooms]
    row_rooms, backs, users, bodies, client_ids, mentioned = [], [], [], [], [], []
    for room_id, count in zip(rooms, counts, strict=True):
        for k, (user_id, body, client_id, mentions) in enumerate(groups[room_id]):
            row_rooms.append(room_id)
            backs.append(count - k)
            users.append(user_id)
            bodies.append(body)
            client_ids.append(client_id)
            mentioned.append(mentions)
    return _store_pg_sql(), [rooms, rooms, counts, when, row_rooms, backs, users, bodies, client_ids, mentioned]


def message_client_id_used(*, room_id: int, user_id: int, client_id: str) -> bool:
    """Tell whether the user already stored a message with this client_id in the room."""
    _, exists = _message_sql()
    with connection.cursor() as cursor:
        cursor.execute(exists, [room_id, user_id, client_id])
        return cursor.fetchone() is not None


@cache
def _session_expiry_sql() -> str:
    from django.contrib.sessions.models import Session

    return (f"SELECT {_col(Session, 'expire_date')} FROM {_table(Session)}"
            f" WHERE {_col(Session, 'session_key')} = %s")


def session_expiry(*, session_key: str) -> datetime | None:
    """Return when a database session expires (None for another session engine or no such session)."""
    from django.conf import settings

    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return None
    with connection.cursor() as cursor:
        cursor.execute(_session_expiry_sql(), [session_key])
        row = cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


@cache
def _page_sql() -> str:
    user_model = get_user_model()
    m = {f: _col(Message, f) for f in ("id", "seq", "user", "body", "created", "client_id", "version", "edited",
                                         "deleted", "mentions", "room")}
    a = {f: _col(Attachment, f) for f in ("id", "name", "content_type", "size", "message")}
    return (
        f"SELECT m.{m['id']}, m.{m['seq']}, m.{m['user']}, u.{_q(user_model._meta.get_field(user_model.USERNAME_FIELD).column)},"
        f" m.{m['body']}, m.{m['created']}, m.{m['client_id']}, m.{m['version']}, m.{m['edited']}, m.{m['deleted']},"
        f" m.{m['mentions']}, a.{a['id']}, a.{a['name']}, a.{a['content_type']}, a.{a['size']}"
        f" FROM {_table(Message)} m JOIN {_table(user_model)} u ON u.{_q(user_model._meta.pk.column)} = m.{m['user']}"
        f" LEFT JOIN {_table(Attachment)} a ON a.{a['message']} = m.{m['id']}"
        f" WHERE m.{m['room']} = %s AND ({{where}}) ORDER BY m.{m['seq']} {{order}} LIMIT %s"
    )


# Page filters: the same ones selectors asks of the ORM, as SQL over the message alias m.
PAGE_FILTERS = {
    "after": "m.{seq} > %s",
    "before": "m.{seq} < %s",
    "since": "m.{version} > %s",
}


def message_rows(*, room_id: int, after: int | None = None, before: int | None = None, since: int | None = None,
                 newest_first: bool, limit: int) -> list[tuple]:
    """Return message rows of a room for a page: (id, seq, user_id, username, body, created, client_id, version,
    edited, deleted, mentions, attachment id, name, content_type, size), in seq order (descending if newest_first).

    after and since combine with OR (seq > after, or changed after since), and before with AND,
    as history recovery asks (selectors.message_list_after).
    """
    cols = {"seq": _col(Message, "seq"), "version": _col(Message, "version")}
    clauses, params = [], []
    if after is not None:
        recovery = PAGE_FILTERS["after"].format(**cols)
        params.append(after)
        if since is not None:
            recovery = f"({recovery} OR {PAGE_FILTERS['since'].format(**cols)})"
            params.append(since)
        clauses.append(recovery)
    if before is not None:
        clauses.append(PAGE_FILTERS["before"].format(**cols))
        params.append(before)
    sql = _page_sql().format(where=" AND ".join(clauses) or "1 = 1", order="DESC" if newest_first else "ASC")
    with _reader() as cursor:
        cursor.execute(sql, [room_id, *params, limit])
        rows = cursor.fetchall()
    return [(*row[:5], _aware(row[5]), *row[6:8], _aware(row[8]), bool(row[9]), *row[10:]) for row in rows]


def _aware(value):
    """A raw cursor's time as an aware UTC datetime (SQLite hands back naive ones, or text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@cache
def _session_row_sql() -> str:
    from django.contrib.sessions.models import Session

    return (f"SELECT {_col(Session, 'session_data')}, {_col(Session, 'expire_date')} FROM {_table(Session)}"
            f" WHERE {_col(Session, 'session_key')} = %s AND {_col(Session, 'expire_date')} > %s")


def session_row(*, session_key: str, now: datetime) -> tuple[str, datetime] | None:
    """Return (encoded data, expiry) of a live database session, or None: the query Django's db store runs."""
    with _reader() as cursor:
        cursor.execute(_session_row_sql(), [session_key, _db().ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    return None if row is None else (row[0], _aware(row[1]))


@cache
def _user_sql() -> tuple[str, list[str]]:
    user_model = get_user_model()
    wanted = [user_model._meta.pk.name, user_model.USERNAME_FIELD, "password", "is_active"]
    names, columns = _select_list(user_model, "u", wanted)
    return f"SELECT {columns} FROM {_table(user_model)} u WHERE u.{_q(user_model._meta.pk.column)} = %s", names


def user_for_session(*, user_id) -> AbstractBaseUser | None:
    """Return the user with this primary key, loading only what a session check needs (the rest on access)."""
    sql, names = _user_sql()
    with _reader() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    user = get_user_model().from_db(_db().alias, names, row)
    user.is_active = bool(user.is_active)
    return user
