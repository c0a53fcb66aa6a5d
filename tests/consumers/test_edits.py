"""Protocol section 10: edits and deletions reach everyone, take versions, and a client that was away gets them."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings
from django.utils import timezone

from chat.models import Message, Room
from tests.consumers.conftest import post_acked
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "/ws/rooms/general/"


@pytest.fixture
def people(db):
    owner = make_user("owner")
    make_room("general", created_by=owner)
    return {name: make_token(make_user(name) if name != "owner" else owner) for name in ("alice", "bob", "owner")}


async def test_an_edit_reaches_everyone_with_the_next_version_and_is_acked(people, open_socket):
    alice, hello = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    assert hello["last_version"] == 0
    first = await post_acked(alice, "helo", "a1")
    await bob.recv_type("message")
    assert (first["version"], first["edited"], first["deleted"]) == (1, None, False)
    await alice.send({"type": "edit", "id": first["id"], "body": " hello ", "client_id": "e1"})
    got = await alice.collect("ack", "message")
    assert got["ack"] == {"type": "ack", "client_id": "e1", "id": first["id"], "seq": first["seq"]}
    changed = await bob.recv_type("message")
    assert changed == got["message"]
    assert (changed["body"], changed["seq"], changed["version"]) == ("hello", first["seq"], 2)
    assert changed["edited"] is not None
    room = await sync_to_async(Room.objects.get)(slug="general")
    assert (room.last_seq, room.last_version) == (1, 2)


async def test_a_deletion_keeps_the_seq_empties_the_body_and_reaches_everyone(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    first = await post_acked(alice, "oops", "a1")
    await bob.recv_type("message")
    await alice.send({"type": "delete", "id": first["id"], "client_id": "d1"})
    assert (await alice.collect("ack"))["ack"]["seq"] == first["seq"]
    gone = await bob.recv_type("message")
    assert (gone["deleted"], gone["body"], gone["seq"], gone["version"]) == (True, "", first["seq"], 2)
    second = await post_acked(alice, "next", "a2")
    assert (second["seq"], second["version"]) == (2, 3)  # seq gapless, versions too


async def test_who_may_edit_and_delete(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    owner, _ = await open_socket(ROOM, bearer=people["owner"])
    mine = await post_acked(alice, "alice's", "a1")
    await bob.send({"type": "edit", "id": mine["id"], "body": "bob was here", "client_id": "b1"})
    frame = await bob.recv()
    while frame["type"] != "error":
        frame = await bob.recv()
    assert (frame["code"], frame["client_id"]) == ("forbidden", "b1")
    await bob.send({"type": "delete", "id": mine["id"], "client_id": "b2"})
    frame = await bob.recv()
    assert (frame["code"], frame["client_id"]) == ("forbidden", "b2")
    await owner.send({"type": "delete", "id": mine["id"], "client_id": "o1"})  # the room's creator may
    assert (await owner.collect("ack"))["ack"]["client_id"] == "o1"
    await alice.send({"type": "edit", "id": mine["id"], "body": "back?", "client_id": "a2"})
    frame = await alice.recv()
    while frame["type"] != "error":
        frame = await alice.recv()
    assert frame["code"] == "not_found"  # a deleted message is gone for edits
    await alice.send({"type": "edit", "id": 999999, "body": "x", "client_id": "a3"})
    assert (await alice.recv())["code"] == "not_found"


@override_settings(CHAT_EDIT_WINDOW=60)
async def test_edits_after_the_window_are_too_late(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    mine = await post_acked(alice, "old news", "a1")
    await sync_to_async(Message.objects.filter(pk=mine["id"]).update)(created=timezone.now() - timedelta(minutes=2))
    await alice.send({"type": "edit", "id": mine["id"], "body": "new news", "client_id": "a2"})
    assert (await alice.recv())["code"] == "too_late"


async def test_a_client_that_was_away_gets_every_edit_and_deletion_with_since(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    messages = [await post_acked(alice, f"m{n}", f"a{n}") for n in range(4)]
    bob, hello = await open_socket(ROOM, bearer=people["bob"])
    seen_seq, seen_version = hello["last_seq"], hello["last_version"]
    await bob.close()
    # While bob is away: an edit of m1, a deletion of m2, and a new message.
    await alice.send({"type": "edit", "id": messages[1]["id"], "body": "m1 fixed", "client_id": "e1"})
    await alice.collect("ack")
    await alice.send({"type": "delete", "id": messages[2]["id"], "client_id": "d1"})
    await alice.collect("ack")
    await post_acked(alice, "m4", "a4")
    _, back = await open_socket(f"{ROOM}?after={seen_seq}&since={seen_version}", bearer=people["bob"])
    assert [(m["seq"], m["body"], m["deleted"]) for m in back["messages"]] == [
        (2, "m1 fixed", False), (3, "", True), (5, "m4", False)]
    assert back["last_version"] == seen_version + 3
    # The same over HTTP.
    history = await sync_to_async(lambda: Client().get(
        f"/api/rooms/general/messages/?after={seen_seq}&since={seen_version}",
        HTTP_AUTHORIZATION=f"Bearer {people['bob']}").json())()
    assert [m["seq"] for m in history["messages"]] == [2, 3, 5]


async def test_since_without_after_is_a_bad_request(people, open_socket):
    sock, hello = await open_socket(f"{ROOM}?since=3", bearer=people["alice"])
    assert hello["type"] == "hello"  # the socket opens with the latest; the error follows
    error = await sock.recv()
    assert (error["code"], "since" in error["detail"]) == ("bad_request", True)


async def test_a_moderators_delete_in_the_admin_reaches_every_open_page(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    mine = await post_acked(alice, "spam", "a1")
    await bob.recv_type("message")

    def moderate():
        staff = make_user("moderator", is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(staff)
        assert client.post(f"/admin/chat/message/{mine['id']}/delete/", {"post": "yes"}).status_code == 302

    await sync_to_async(moderate)()
    gone = await bob.recv_type("message")
    assert (gone["id"], gone["deleted"], gone["body"]) == (mine["id"], True, "")
