"""Frames on an open socket: message, ack, history, ping, typing, presence and every error."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.test import override_settings

from chat.domain import services
from chat.models import Message
from chat.store import queries
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "/ws/rooms/general/"


@pytest.fixture
def people(db):
    make_room("general")
    return {name: make_token(make_user(name)) for name in ("alice", "bob")}


def _count():
    return Message.objects.count()


async def test_message_is_broadcast_to_everyone_and_acked_to_sender(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    await alice.send({"type": "message", "body": "  hello bob  ", "client_id": "c1"})
    got = await alice.collect("message", "ack")
    seen_by_alice, ack = got["message"], got["ack"]
    seen_by_bob = await bob.recv_type("message")
    assert seen_by_alice == seen_by_bob
    assert seen_by_bob["body"] == "hello bob" and seen_by_bob["seq"] == 1 and seen_by_bob["client_id"] == "c1"
    assert seen_by_bob["user"]["username"] == "alice" and seen_by_bob["room"] == "general"
    assert ack == {"type": "ack", "client_id": "c1", "id": seen_by_bob["id"], "seq": 1}


async def test_repeated_client_id_acks_the_original_and_stores_nothing(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send({"type": "message", "body": "once", "client_id": "dup"})
    first = await alice.collect("message", "ack")
    await alice.send({"type": "message", "body": "once", "client_id": "dup"})
    await alice.send({"type": "ping", "ts": "marker"})
    # Only the ack and the pong come back: no second broadcast.
    assert [await alice.recv(), await alice.recv()] == [first["ack"], {"type": "pong", "ts": "marker"}]
    assert await sync_to_async(_count)() == 1


async def test_message_without_client_id_is_acked_with_null(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send({"type": "message", "body": "plain"})
    ack = await alice.recv_type("ack")
    assert ack["client_id"] is None and ack["seq"] == 1


async def test_history_pages_backwards(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    for n in range(5):
        await alice.send({"type": "message", "body": f"m{n + 1}", "client_id": f"k{n}"})
        await alice.recv_type("ack")
    await alice.send({"type": "history", "before": 4, "limit": 2})
    page = await alice.recv_type("history")
    assert [m["seq"] for m in page["messages"]] == [2, 3] and page["has_more"] is True
    await alice.send({"type": "history", "before": 2})
    page = await alice.recv_type("history")
    assert [m["body"] for m in page["messages"]] == ["m1"] and page["has_more"] is False


async def test_ping_gets_pong_with_the_same_ts(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    for ts in (12345, "abc", {"a": [1, None]}, None):
        await alice.send({"type": "ping", "ts": ts})
        assert await alice.recv() == {"type": "pong", "ts": ts}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('"text"', "bad_request"),
        ("{}", "bad_request"),
        ('{"type": 3}', "bad_request"),
        ('{"type": "dance"}', "bad_request"),
        ('{"type": "message"}', "bad_request"),
        ('{"type": "message", "body": 5}', "bad_request"),
        ('{"type": "message", "body": "   "}', "bad_request"),
        ('{"type": "message", "body": "x", "client_id": 9}', "bad_request"),
        ('{"type": "typing"}', "bad_request"),
        ('{"type": "typing", "active": "yes"}', "bad_request"),
        ('{"type": "history"}', "bad_request"),
        ('{"type": "history", "before": "9"}', "bad_request"),
        ('{"type": "history", "before": 9, "limit": 0}', "bad_request"),
        ('{"type": "history", "before": 9, "limit": 101}', "bad_request"),
        ('{"type": "history", "before": true}', "bad_request"),
        ('{"type": "ping"}', "bad_request"),
        ('{"type": "upload", "name": "a.txt", "content_type": "text/plain", "size": 0}', "bad_request"),
        ('{"type": "upload", "name": "", "content_type": "text/plain", "size": 3}', "bad_request"),
        ('{"type": "upload", "name": "a.exe", "content_type": "application/x-msdownload", "size": 3}', "unsupported_type"),
        ('{"type": "upload", "name": "big.bin", "content_type": "text/plain", "size": 99999999999}', "too_large"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_carries_on(people, open_socket, frame, code):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send(frame)
    error = await alice.recv()
    assert error["type"] == "error" and error["code"] == code and error["detail"]
    await alice.send({"type": "ping", "ts": 1})
    assert await alice.recv() == {"type": "pong", "ts": 1}
    assert await sync_to_async(_count)() == 0


async def test_too_long_body_is_refused_with_its_client_id(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send({"type": "message", "body": "x" * 4001, "client_id": "long"})
    error = await alice.recv()
    assert error == {"type": "error", "code": "too_long", "detail": error["detail"], "client_id": "long"}
    assert await sync_to_async(_count)() == 0


async def test_oversized_text_frame_is_ignored_with_too_large(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    with override_settings(CHAT_MAX_TEXT_FRAME_BYTES=1000):
        await alice.send(json.dumps({"type": "message", "body": "é" * 600}))
        error = await alice.recv()
    assert error["code"] == "too_large"
    await alice.send({"type": "message", "body": "small", "client_id": "s"})
    assert (await alice.recv_type("ack"))["seq"] == 1


async def test_binary_frame_without_upload_is_discarded_with_bad_request(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send_bytes(b"\x00\x01 stray bytes")
    error = await alice.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"
    await alice.send({"type": "ping", "ts": "still here"})
    assert await alice.recv() == {"type": "pong", "ts": "still here"}


async def test_database_failure_answers_unavailable_and_stores_nothing(people, open_socket, monkeypatch):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])

    def broken(**kwargs):
        raise OperationalError("database is down")

    monkeypatch.setattr(queries, "messages_store", broken)  # the batch's one statement
    monkeypatch.setattr(services, "message_create", broken)  # and the one-by-one path
    await alice.send({"type": "message", "body": "lost?", "client_id": "u1"})
    error = await alice.recv()
    assert error["code"] == "unavailable" and error["client_id"] == "u1"
    monkeypatch.undo()
    await alice.send({"type": "message", "body": "retry", "client_id": "u1"})
    assert (await alice.recv_type("ack"))["seq"] == 1
    assert await sync_to_async(_count)() == 1


async def test_typing_reaches_other_users_but_not_the_senders_tabs(people, open_socket):
    alice_tab1, _ = await open_socket(ROOM, bearer=people["alice"])
    alice_tab2, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    await alice_tab1.send({"type": "typing", "active": True})
    typing = await bob.recv()
    assert typing == {"type": "typing", "user": {"id": typing["user"]["id"], "username": "alice"}, "active": True}
    await bob.send({"type": "message", "body": "after typing", "client_id": "b1"})
    frames = [await alice_tab2.recv() for _ in range(2)]
    assert [f["type"] for f in frames] == ["presence", "message"], frames  # bob's join, then his message


async def test_typing_true_is_throttled_but_false_after_it_is_relayed(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    await alice.send({"type": "typing", "active": False})  # nothing relayed yet: dropped
    await alice.send({"type": "typing", "active": True})
    await alice.send({"type": "typing", "active": True})  # within 1 s: dropped
    await alice.send({"type": "typing", "active": False})
    await alice.send({"type": "message", "body": "marker", "client_id": "m"})
    received = [await bob.recv() for _ in range(3)]
    assert [(f["type"], f.get("active")) for f in received] == [
        ("typing", True),
        ("typing", False),
        ("message", None),
    ]


async def test_presence_counts_tabs_once_and_announces_changes(people, open_socket):
    bob, hello = await open_socket(ROOM, bearer=people["bob"])
    assert [u["username"] for u in hello["online"]] == ["bob"]
    alice1, hello = await open_socket(ROOM, bearer=people["alice"])
    assert [u["username"] for u in hello["online"]] == ["alice", "bob"]
    joined = await bob.recv_type("presence")
    assert [u["username"] for u in joined["joined"]] == ["alice"] and joined["left"] == []
    assert [u["username"] for u in joined["online"]] == ["alice", "bob"]
    alice2, hello = await open_socket(ROOM, bearer=people["alice"])
    assert [u["username"] for u in hello["online"]] == ["alice", "bob"]
    await alice2.close()
    # alice still has a tab open: no presence frame; the next frame bob sees is the marker.
    await alice1.send({"type": "message", "body": "marker", "client_id": "p"})
    assert (await bob.recv())["type"] == "message"
    await alice1.close()
    left = await bob.recv_type("presence")
    assert [u["username"] for u in left["left"]] == ["alice"] and left["joined"] == []
    assert [u["username"] for u in left["online"]] == ["bob"]


async def test_message_racing_a_room_deletion_is_refused_and_closed_4404(people, open_socket, monkeypatch):
    from chat.actions import authority
    from chat.models import Room

    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    # The deletion's announcement (which closes the socket at once) has not arrived yet.
    monkeypatch.setattr(authority, "room_access_changed", lambda **kwargs: None)
    await sync_to_async(Room.objects.filter(slug="general").delete)()
    await alice.send({"type": "message", "body": "anyone?", "client_id": "gone"})
    error = await alice.recv()
    assert error["code"] == "forbidden" and error["client_id"] == "gone"
    assert await alice.closed_with() == 4404
    assert await sync_to_async(_count)() == 0


@override_settings(CHAT_RATE_BURST=100)
async def test_back_to_back_messages_are_stored_together_and_acked_in_order(people, open_socket, monkeypatch):
    batches = []
    store_many = services.message_create_many

    def counted(*, drafts):
        batches.append(len(drafts))
        return store_many(drafts=drafts)

    monkeypatch.setattr(services, "message_create_many", counted)
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    for i in range(20):
        await alice.send({"type": "message", "body": f"m{i}", "client_id": f"k{i}"})
    await alice.send({"type": "ping", "ts": "after"})
    replies = []
    while len(replies) < 21:
        frame = await alice.recv()
        if frame["type"] not in ("message", "presence"):  # broadcasts, bob's join
            replies.append(frame)
    # Every ack in frame order, then the pong: the reply to a later frame waits its turn.
    assert [(f["type"], f.get("client_id"), f.get("seq")) for f in replies] == [
        ("ack", f"k{i}", i + 1) for i in range(20)
    ] + [("pong", None, None)]
    seen = [await bob.recv_type("message") for _ in range(20)]
    assert [(m["seq"], m["body"]) for m in seen] == [(i + 1, f"m{i}") for i in range(20)]
    assert batches and max(batches) > 1 and sum(batches) <= 20  # at least one group commit
    assert await sync_to_async(_count)() == 20
