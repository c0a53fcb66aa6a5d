"""Protocol section 12: direct messages, mentions, search."""

import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import close_old_connections
from django.test import Client

from chat.domain import mentions
from chat.models import Membership, Message, Room
from tests.consumers.conftest import post_acked, socket_for
from tests.consumers.test_read_state import _state
from tests.factories import make_room, make_token, make_user
from tests.support.protocol import assert_valid_frame

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(db):
    users = {name: make_user(name) for name in ("alice", "bob", "carol")}
    make_room("general", created_by=users["alice"])
    return {name: (user, make_token(user)) for name, user in users.items()}


def _users_fast(names: list[str]):
    """Users without a password (hashing one costs a noticeable fraction of a second)."""
    user_model = get_user_model()
    user_model.objects.bulk_create([user_model(username=name) for name in names])
    return list(user_model.objects.filter(username__in=names))


def _api(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def _post_json(client: Client, path: str, body: dict):
    return client.post(path, json.dumps(body), content_type="application/json")


async def _user_socket(token: str):
    sock = socket_for("/ws/user/", bearer=token)
    assert (await sock.connect())[0]
    hello = await sock.recv()
    assert hello["type"] == "user_hello"
    return sock, hello


# -- direct messages ---------------------------------------------------------------------


async def test_a_dm_is_one_room_per_pair_and_appears_on_the_other_users_sidebar(people):
    alice_token, bob_token = people["alice"][1], people["bob"][1]
    bob_sidebar, hello = await _user_socket(bob_token)
    assert hello["rooms"] == []
    try:
        opened = await sync_to_async(_post_json)(_api(alice_token), "/api/dms/", {"username": "bob"})
        assert opened.status_code == 201
        state = opened.json()
        assert (state["dm"], state["private"], state["name"], state["joined"]) == (True, True, "bob", True)
        appeared = await _state(bob_sidebar, state["slug"], joined=True)
        assert (appeared["dm"], appeared["name"], appeared["unread"]) == (True, "alice", 0)
        again = await sync_to_async(_post_json)(_api(bob_token), "/api/dms/", {"username": "alice"})
        assert again.status_code == 200 and again.json()["slug"] == state["slug"] and again.json()["name"] == "alice"
        # Only the two of them, and that never changes.
        room = await sync_to_async(Room.objects.get)(slug=state["slug"])
        members = await sync_to_async(lambda: sorted(room.memberships.values_list("user__username", flat=True)))()
        assert members == ["alice", "bob"]
        added = await sync_to_async(_post_json)(_api(alice_token), f"/api/rooms/{room.slug}/members/",
                                                {"username": "carol"})
        assert added.status_code == 403
        left = await sync_to_async(_api(alice_token).delete)(f"/api/rooms/{room.slug}/members/alice/")
        assert left.status_code == 403
        # Carol cannot read it.
        carol_sock = socket_for(f"/ws/rooms/{room.slug}/", bearer=people["carol"][1])
        assert (await carol_sock.connect())[0]
        assert await carol_sock.closed_with() == 4403
    finally:
        await bob_sidebar.close()


def test_a_dm_needs_another_existing_active_user(people):
    client = _api(people["alice"][1])
    assert _post_json(client, "/api/dms/", {"username": "alice"}).status_code == 400
    assert _post_json(client, "/api/dms/", {"username": "nobody"}).status_code == 404
    assert _post_json(client, "/api/dms/", {}).status_code == 400
    assert Client().post("/api/dms/", "{}", content_type="application/json").status_code == 401
    room_create = _post_json(client, "/api/rooms/", {"name": "sneaky", "slug": "dm-1-2"})
    assert room_create.status_code == 400  # the DM slugs are kept


def test_two_users_starting_a_dm_with_each_other_at_once_get_one_room(people):
    """Real threads, each with its own database connection, on SQLite."""
    alice_token, bob_token = people["alice"][1], people["bob"][1]
    start = threading.Barrier(8)
    answers = []

    def open_dm(token, other):
        start.wait()
        try:
            response = _post_json(_api(token), "/api/dms/", {"username": other})
            answers.append((response.status_code, response.json().get("slug")))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=open_dm, args=(alice_token, "bob") if i % 2 else (bob_token, "alice"))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 8
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({slug for _, slug in answers}) == 1
    assert Room.objects.filter(dm=True).count() == 1
    assert Membership.objects.filter(room__dm=True).count() == 2


# -- mentions ----------------------------------------------------------------------------


def test_mention_candidates_follow_the_word_boundary_rules():
    assert mentions.candidates("hi @Bob and @carol.") == ["bob", "carol.", "carol"]
    assert mentions.candidates("mail alice@bob.com") == []  # after a username character: an address
    assert mentions.candidates("(@dave) @@eve") == ["dave", "@eve"]  # usernames may hold an @
    assert mentions.candidates("no at sign") == []


def test_only_members_are_mentioned_case_insensitively_and_at_most_fifty(people):
    room = Room.objects.get(slug="general")
    for name in ("alice", "bob"):
        Membership.objects.get_or_create(room=room, user=people[name][0])
    stored = mentions.resolve(room_id=room.pk, slug=room.slug,
                              body="@BOB look, @carol is not here, @alice. and @bob again")
    assert mentions.decode(stored) == [{"id": people["bob"][0].pk, "username": "bob"},
                                       {"id": people["alice"][0].pk, "username": "alice"}]
    many = _users_fast([f"m{i}" for i in range(55)])
    Membership.objects.bulk_create([Membership(room=room, user=u) for u in many])  # no signals: forget by hand
    assert len(mentions.decode(mentions.resolve(room_id=room.pk, slug=room.slug, body="@m1"))) == 0  # cached
    mentions.members_forget(room.slug)
    body = " ".join(f"@m{i}" for i in range(55))
    assert len(mentions.decode(mentions.resolve(room_id=room.pk, slug=room.slug, body=body))) == mentions.MAX_MENTIONS


async def test_a_mention_is_carried_counted_and_follows_edits(people):
    alice_token, (bob, bob_token), carol = people["alice"][1], people["bob"], people["carol"][0]
    sockets = []
    try:
        for token in (alice_token, bob_token):  # both join general by opening it; carol never does
            sock = socket_for("/ws/rooms/general/", bearer=token)
            assert (await sock.connect())[0]
            assert (await sock.recv())["type"] == "hello"
            sockets.append(sock)
        alice_sock, bob_room = sockets
        bob_sidebar, _ = await _user_socket(bob_token)
        sockets.append(bob_sidebar)
        message = await post_acked(alice_sock, "hey @Bob, and @carol (not a member)", "m1")
        assert_valid_frame(message)
        assert message["mentions"] == [{"id": bob.pk, "username": "bob"}]
        counted = await _state(bob_sidebar, "general", last_seq=1)
        assert (counted["unread"], counted["mentions"]) == (1, 1)
        await post_acked(alice_sock, "no one here", "m2")
        assert (await _state(bob_sidebar, "general", last_seq=2))["mentions"] == 1
        # Carol joins now: the members this process had cached for mentions are read again.
        carol_sock = socket_for("/ws/rooms/general/", bearer=people["carol"][1])
        assert (await carol_sock.connect())[0]
        sockets.append(carol_sock)
        assert (await carol_sock.recv())["type"] == "hello"
        late = await post_acked(alice_sock, "welcome @carol", "m3")
        assert late["mentions"] == [{"id": carol.pk, "username": "carol"}]
        await carol_sock.close()
        sockets.remove(carol_sock)
        await sync_to_async(Membership.objects.filter(user=carol).delete)()  # so she is no member below
        await alice_sock.send({"type": "edit", "id": message["id"], "body": "hey everyone"})
        edited = await _state(bob_sidebar, "general", last_version=4)
        assert (edited["unread"], edited["mentions"]) == (3, 0)
        await alice_sock.send({"type": "edit", "id": message["id"], "body": "hey @bob again"})
        assert (await _state(bob_sidebar, "general", last_version=5))["mentions"] == 1
        await alice_sock.send({"type": "delete", "id": message["id"]})
        gone = await _state(bob_sidebar, "general", last_version=6)
        assert (gone["unread"], gone["mentions"]) == (2, 0)
        # A fresh count from the database agrees; carol, never a member, was never mentioned.
        again, hello = await _user_socket(bob_token)
        sockets.append(again)
        assert [(r["unread"], r["mentions"]) for r in hello["rooms"]] == [(2, 0)]
        stored = await sync_to_async(lambda: list(Message.objects.order_by("seq").values_list("mentions", flat=True)))()
        assert stored == ["", "", f",{carol.pk}:carol,"]
    finally:
        for sock in sockets:
            await sock.close()


# -- search ------------------------------------------------------------------------------


def test_search_finds_only_what_the_caller_may_read_newest_first_with_paging(people):
    (alice, alice_token), bob_token = people["alice"], people["bob"][1]
    general = Room.objects.get(slug="general")
    secret = make_room("secret", private=True, members=[alice], created_by=alice)
    for i in range(25):
        Message.objects.create(room=general, seq=i + 1, version=i + 1, user=alice, body=f"deploy note {i}")
    Message.objects.create(room=secret, seq=1, version=1, user=alice, body="deploy the secret plan")
    Message.objects.create(room=general, seq=26, version=26, user=alice, body="deploy gone", deleted=True)
    bob_page = _api(bob_token).get("/api/search/", {"q": "deploy"}).json()
    assert len(bob_page["results"]) == 20 and bob_page["has_more"] is True
    assert all(m["room"] == "general" for m in bob_page["results"])  # never the private room he is not in
    ids = [m["id"] for m in bob_page["results"]]
    assert ids == sorted(ids, reverse=True)
    rest = _api(bob_token).get("/api/search/", {"q": "deploy", "before": ids[-1]}).json()
    assert len(rest["results"]) == 5 and rest["has_more"] is False
    assert "deploy gone" not in {m["body"] for m in bob_page["results"] + rest["results"]}
    assert _api(bob_token).get("/api/search/", {"q": "secret plan"}).json()["results"] == []
    alice_hits = _api(alice_token).get("/api/search/", {"q": "secret plan"}).json()["results"]
    assert [m["body"] for m in alice_hits] == ["deploy the secret plan"]
    assert _api(bob_token).get("/api/search/", {"q": "deploy", "room": "secret"}).status_code == 403
    in_room = _api(alice_token).get("/api/search/", {"q": "deploy", "room": "secret"}).json()["results"]
    assert [m["room"] for m in in_room] == ["secret"]
    for bad in ({}, {"q": "  "}, {"q": "x" * 201}, {"q": "a", "before": "x"}):
        assert _api(bob_token).get("/api/search/", bad).status_code == 400
    assert _api(bob_token).get("/api/search/", {"q": "a", "room": "nope"}).status_code == 404
    assert Client().get("/api/search/", {"q": "deploy"}).status_code == 401


def test_the_user_type_ahead_answers_at_most_twenty_and_never_everyone(people):
    _users_fast([f"bobby{i:02d}" for i in range(30)])
    client = _api(people["alice"][1])
    found = client.get("/api/users/", {"q": "BOB"}).json()["users"]
    assert len(found) == 20 and found[0]["username"] == "bob" and all(u["username"].startswith("bob") for u in found)
    assert client.get("/api/users/", {"q": "alice"}).json()["users"] == []  # not the caller
    assert client.get("/api/users/").json()["users"] == []
    assert client.get("/api/users/", {"q": ""}).json()["users"] == []
