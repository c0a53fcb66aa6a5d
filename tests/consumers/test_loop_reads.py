"""Handshake reads on the event loop's own SQLite connection (chat/store/loop_reads.py).

The loop may only read: each test checks both which way a handshake went (the
chat_handshake_reads_total counter) and that its hello is exactly what the database
thread's path gives.
"""

import pytest
from asgiref.sync import sync_to_async

from chat import metrics
from chat.domain import mentions, services
from chat.models import ApiToken, Attachment, Membership, Message
from chat.store import loop_reads, queries
from tests.consumers.conftest import session_cookie
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def reads() -> dict[str, float]:
    return {where: metrics.HANDSHAKE_READS.labels(where)._value.get() for where in ("loop", "thread")}


def went(before: dict[str, float]) -> str:
    after = reads()
    moved = [where for where in after if after[where] != before[where]]
    assert len(moved) == 1 and after[moved[0]] - before[moved[0]] == 1, (before, after)
    return moved[0]


async def hello_via(open_socket, path: str, **auth) -> tuple[dict, str]:
    """Open a socket; return its hello and which way its handshake read the database."""
    before = reads()
    _, hello = await open_socket(path, **auth)
    return hello, went(before)


def stored_room():
    """A public room with a member, an edit, a deletion, a mention and an attachment in its history."""
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room("general")
    services.room_join(room=room, user=bob)
    for i in range(3):
        services.message_create(room=room, user=bob, body=f"m{i} @alice", client_id=f"c{i}",
                                mentioned=mentions.encode([(alice.pk, "alice")]))
    frame, _ = services.message_create(room=room, user=bob, body="", client_id="file")
    Attachment.objects.create(message_id=frame["id"], file="attachments/x/a.png", name="a.png",
                              content_type="image/png", size=3)
    first = Message.objects.get(room=room, seq=1)
    services.message_change(room=room, actor=bob, message_id=first.pk, body="m0 edited")
    services.message_change(room=room, actor=bob, message_id=Message.objects.get(room=room, seq=2).pk, body=None)
    return room, alice, bob


async def test_a_member_s_handshake_reads_on_the_loop_and_hello_matches_the_thread_s(open_socket, settings):
    _room, alice, bob = await sync_to_async(stored_room)()
    cookie = await sync_to_async(session_cookie)(bob)
    from_loop, where = await hello_via(open_socket, "/ws/rooms/general/", cookie=cookie)
    assert where == "loop"
    settings.CHAT_LOOP_READS = False
    from_thread, where = await hello_via(open_socket, "/ws/rooms/general/", cookie=cookie)
    assert where == "thread"
    assert from_loop == from_thread
    messages = from_loop["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    assert messages[0]["body"] == "m0 edited" and messages[0]["edited"] is not None
    assert messages[1]["deleted"] is True and messages[1]["body"] == ""
    assert messages[2]["mentions"] == [{"id": alice.pk, "username": "alice"}]
    assert messages[3]["attachment"]["name"] == "a.png" and messages[3]["attachment"]["size"] == 3
    assert from_loop["last_seq"] == 4 and from_loop["last_read"] == 0


async def test_a_first_open_joins_through_the_thread_then_reads_on_the_loop(open_socket):
    """Joining a public room is a write: the loop leaves it to the thread, which stores the membership."""
    _room, alice, _bob = await sync_to_async(stored_room)()
    cookie = await sync_to_async(session_cookie)(alice)
    hello, where = await hello_via(open_socket, "/ws/rooms/general/", cookie=cookie)
    assert where == "thread"
    assert hello["last_read"] == 4  # joined at the room's end
    assert await Membership.objects.filter(room__slug="general", user=alice).acount() == 1
    again, where = await hello_via(open_socket, "/ws/rooms/general/", cookie=cookie)
    assert where == "loop"
    assert again["last_read"] == 4 and again["messages"] == hello["messages"]


async def test_a_token_due_its_last_used_mark_goes_to_the_thread_once(open_socket):
    _room, _alice, bob = await sync_to_async(stored_room)()
    raw = await sync_to_async(make_token)(bob)
    assert (await ApiToken.objects.aget(user=bob)).last_used is None
    hello, where = await hello_via(open_socket, "/ws/rooms/general/", bearer=raw)
    assert where == "thread"
    assert hello["user"]["username"] == "bob"
    assert (await ApiToken.objects.aget(user=bob)).last_used is not None  # the write happened, once
    again, where = await hello_via(open_socket, f"/ws/rooms/general/?token={raw}")
    assert where == "loop"
    assert again["user"] == hello["user"]


async def test_refusals_read_on_the_loop_with_their_close_codes(open_socket):
    from tests.consumers.conftest import socket_for

    await sync_to_async(stored_room)()
    carol = await sync_to_async(make_user)("carol")
    await sync_to_async(make_room)("secret", private=True)
    cookie = await sync_to_async(session_cookie)(carol)
    for path, code in (("/ws/rooms/secret/", 4403), ("/ws/rooms/nowhere/", 4404)):
        before = reads()
        sock = socket_for(path, cookie=cookie)
        await sock.connect()
        assert await sock.closed_with() == code
        assert went(before) == "loop"
    before = reads()
    sock = socket_for("/ws/rooms/general/", bearer="not-a-token")
    await sock.connect()
    assert await sock.closed_with() == 4401
    assert went(before) == "loop"


async def test_a_short_recovery_reads_on_the_loop_and_a_long_one_on_the_thread(open_socket, settings):
    _room, _alice, bob = await sync_to_async(stored_room)()
    cookie = await sync_to_async(session_cookie)(bob)
    short, where = await hello_via(open_socket, "/ws/rooms/general/?after=2", cookie=cookie)
    assert where == "loop"
    assert [m["seq"] for m in short["messages"]] == [3, 4]
    settings.CHAT_HELLO_LATEST = 1  # now 2 behind is a long recovery
    long, where = await hello_via(open_socket, "/ws/rooms/general/?after=2", cookie=cookie)
    assert where == "thread"
    assert long["messages"] == short["messages"]
    since, where = await hello_via(open_socket, "/ws/rooms/general/?after=4&since=4", cookie=cookie)
    assert where == "thread"  # changes since a version: the thread's query
    assert [m["seq"] for m in since["messages"]] == [1, 2]


async def test_the_loop_s_connection_never_writes():
    """A write inside a loop read raises before it runs, and run() answers None (take the thread)."""
    room = await sync_to_async(make_room)("general")
    assert loop_reads.run(queries.seq_bump, room_id=room.pk, count=1) is None  # Django's guard: on the loop
    cursor_write = loop_reads.run(_raw_write, room_id=room.pk)
    assert cursor_write is None  # the connection itself is query_only
    await room.arefresh_from_db()
    assert room.last_seq == 0


def _raw_write(*, room_id: int):
    with queries._reader() as cursor:
        cursor.execute("UPDATE chat_room SET last_seq = last_seq + 1 WHERE id = %s", [room_id])
    return True


async def test_loop_reads_make_no_database_wrapper_per_socket(open_socket, monkeypatch):
    """django.db.connection is per context: touching it from a socket's task kept a wrapper per socket (~4 KB)."""
    from django.db import connections

    _room, _alice, bob = await sync_to_async(stored_room)()
    raw = await sync_to_async(make_token)(bob)
    await open_socket("/ws/rooms/general/", bearer=raw)  # marks the token used (thread); the loop's wrapper is made
    made = []
    real = connections.create_connection
    monkeypatch.setattr(connections, "create_connection", lambda alias: made.append(alias) or real(alias))
    before = reads()
    for _ in range(5):
        await open_socket("/ws/rooms/general/", bearer=raw)
    assert reads()["loop"] - before["loop"] == 5
    assert made == []
