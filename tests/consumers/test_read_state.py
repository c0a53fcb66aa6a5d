"""Protocol section 11: read cursors, exact unread counts, and the user socket."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from chat.models import Membership, Message, Room
from chat.realtime import hub as hub_module
from chat.realtime import user_socket
from tests.consumers.conftest import post_acked, session_cookie, socket_for
from tests.factories import make_room, make_token, make_user
from tests.support.protocol import assert_valid_frame

pytestmark = pytest.mark.django_db(transaction=True)
USER = "/ws/user/"


@pytest.fixture
def people(db):
    owner = make_user("owner")
    make_room("general", created_by=owner)
    make_room("random", created_by=owner)
    users = {"owner": owner, "alice": make_user("alice"), "bob": make_user("bob")}
    return {name: make_token(user) for name, user in users.items()}


@pytest.fixture
def open_user_socket(open_socket):
    """Open user sockets closed at the end of the test; returns (socket, user_hello)."""

    async def opener(**auth):
        sock, hello = await open_socket(USER, first="user_hello", **auth)
        assert_valid_frame(hello)
        return sock, hello

    return opener


async def _state(sock, slug: str, **expected) -> dict:
    """Receive room_state frames until one of this room matches every expected field; return it."""
    while True:
        frame = await sock.recv_type("room_state")
        assert_valid_frame(frame)
        if frame["slug"] == slug and all(frame.get(k) == v for k, v in expected.items()):
            return frame


def _cursor(username: str, slug: str) -> int | None:
    return Membership.objects.filter(user__username=username, room__slug=slug).values_list(
        "last_read", flat=True).first()


async def test_opening_a_public_room_joins_it_with_its_history_read(people, open_socket, open_user_socket):
    owner, _ = await open_socket("/ws/rooms/general/", bearer=people["owner"])
    for i in range(3):
        await post_acked(owner, f"before alice {i}", f"o{i}")
    assert await sync_to_async(_cursor)("alice", "general") is None
    watcher, hello = await open_user_socket(bearer=people["alice"])
    assert hello["rooms"] == [] and hello["user"]["username"] == "alice"
    alice, room_hello = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    assert (room_hello["last_read"], room_hello["last_seq"]) == (3, 3)
    assert await sync_to_async(_cursor)("alice", "general") == 3
    joined = await _state(watcher, "general", joined=True)
    assert (joined["unread"], joined["last_read"], joined["last_seq"], joined["dm"]) == (0, 3, 3, False)
    assert joined["last_message"]["body"] == "before alice 2"
    # A second open joins nothing new.
    _again, again = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    assert again["last_read"] == 3
    assert await sync_to_async(Membership.objects.filter(user__username="alice").count)() == 1


async def test_unread_counts_others_messages_above_the_cursor_and_a_deletion_takes_one_back(
        people, open_socket, open_user_socket):
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    bob, _ = await open_socket("/ws/rooms/general/", bearer=people["bob"])
    watcher, hello = await open_user_socket(bearer=people["alice"])
    assert [(r["slug"], r["unread"]) for r in hello["rooms"]] == [("general", 0)]
    first = await post_acked(bob, "one", "b1")
    assert (await _state(watcher, "general", last_seq=1))["unread"] == 1
    await post_acked(alice, "mine", "a1")  # her own message is not unread
    mine = await _state(watcher, "general", last_seq=2)
    assert mine["unread"] == 1 and mine["last_message"]["body"] == "mine"
    await post_acked(bob, "two", "b2")
    assert (await _state(watcher, "general", last_seq=3))["unread"] == 2
    await bob.send({"type": "delete", "id": first["id"]})
    deleted = await _state(watcher, "general", last_version=4)
    assert deleted["unread"] == 1 and deleted["last_message"]["body"] == "two"
    # Computed afresh from the database, a new socket agrees.
    _second, again = await open_user_socket(bearer=people["alice"])
    assert [(r["unread"], r["last_seq"], r["last_version"]) for r in again["rooms"]] == [(1, 3, 4)]


async def test_a_read_moves_the_cursor_forward_only_and_every_socket_of_the_user_hears_it(
        people, open_socket, open_user_socket):
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    alice_tab, _ = await open_socket("/ws/rooms/random/", bearer=people["alice"])
    bob, _ = await open_socket("/ws/rooms/general/", bearer=people["bob"])
    watcher, _ = await open_user_socket(bearer=people["alice"])
    bob_watcher, _ = await open_user_socket(bearer=people["bob"])
    for i in range(4):
        await post_acked(bob, f"m{i}", f"b{i}")
    await _state(watcher, "general", last_seq=4, unread=4)
    await alice.send({"type": "read", "seq": 99})  # beyond the end: held to last_seq
    assert (await _state(watcher, "general", last_read=4))["unread"] == 0
    assert (await _state(alice_tab, "general"))["last_read"] == 4  # a room socket of another room, too
    assert (await _state(alice, "general"))["last_read"] == 4
    assert await sync_to_async(_cursor)("alice", "general") == 4
    await alice.send({"type": "read", "seq": 2})  # backwards: nothing moves, nobody is told
    await alice.send({"type": "ping", "ts": 1})
    assert (await alice.recv_type("pong"))["ts"] == 1
    assert await sync_to_async(_cursor)("alice", "general") == 4
    await post_acked(bob, "m4", "b4")
    after = await _state(watcher, "general", last_seq=5)
    assert (after["unread"], after["last_read"]) == (1, 4)
    # Bob's user socket never heard alice's cursor: his own cursor did not move.
    bob_frames = []
    while not await bob_watcher.comm.receive_nothing(timeout=0.2):
        bob_frames.append(json.loads(await bob_watcher.comm.receive_from()))
    assert all(f["last_read"] == 0 for f in bob_frames), bob_frames
    assert await sync_to_async(_cursor)("bob", "general") == 0


async def test_bad_reads_get_error_frames_and_the_socket_stays(people, open_socket):
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    for bad in ({"type": "read"}, {"type": "read", "seq": -1}, {"type": "read", "seq": "3"}):
        await alice.send(bad)
        assert (await alice.recv())["code"] == "bad_request"
    await alice.send({"type": "ping", "ts": "still"})
    assert (await alice.recv_type("pong"))["ts"] == "still"


async def test_user_hello_sorts_rooms_by_last_activity(people, open_socket, open_user_socket):
    alice_general, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    alice_random, _ = await open_socket("/ws/rooms/random/", bearer=people["alice"])
    await post_acked(alice_general, "older", "g1")
    await post_acked(alice_random, "newer", "r1")
    _w, hello = await open_user_socket(bearer=people["alice"])
    assert [r["slug"] for r in hello["rooms"]] == ["random", "general"]
    await post_acked(alice_general, "newest", "g2")
    _w2, hello = await open_user_socket(bearer=people["alice"])
    assert [r["slug"] for r in hello["rooms"]] == ["general", "random"]
    assert set(hello["rooms"][0]) >= {"slug", "name", "private", "dm", "last_seq", "last_read", "unread",
                                      "mentions", "last_message"}


async def test_being_added_and_removed_shows_and_hides_a_private_room(people, open_socket, open_user_socket):
    owner = await sync_to_async(get_user_model().objects.get)(username="owner")
    await sync_to_async(make_room)("club", private=True, members=[owner], created_by=owner)
    watcher, hello = await open_user_socket(bearer=people["alice"])
    assert hello["rooms"] == []
    client = Client(HTTP_AUTHORIZATION=f"Bearer {people['owner']}")
    added = await sync_to_async(client.post)("/api/rooms/club/members/", {"username": "alice"},
                                             content_type="application/json")
    assert added.status_code == 201
    state = await _state(watcher, "club", joined=True)
    assert (state["private"], state["unread"]) == (True, 0)
    owner_sock, _ = await open_socket("/ws/rooms/club/", bearer=people["owner"])
    await post_acked(owner_sock, "welcome", "w1")
    assert (await _state(watcher, "club", last_seq=1))["unread"] == 1
    removed = await sync_to_async(client.delete)("/api/rooms/club/members/alice/")
    assert removed.status_code == 200
    assert await _state(watcher, "club", joined=False) == {"type": "room_state", "slug": "club", "joined": False}
    await post_acked(owner_sock, "after alice left", "w2")
    await watcher.send({"type": "ping", "ts": "end"})
    frames = [await watcher.recv()]
    while frames[-1]["type"] != "pong":
        frames.append(await watcher.recv())
    assert [f for f in frames if f["type"] == "room_state"] == []


async def test_leaving_a_public_room_over_http_and_posting_there_joins_again(people, open_socket, open_user_socket):
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    watcher, _ = await open_user_socket(bearer=people["alice"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {people['alice']}")
    left = await sync_to_async(client.delete)("/api/rooms/general/members/alice/")
    assert left.status_code == 200
    await _state(watcher, "general", joined=False)
    assert await sync_to_async(_cursor)("alice", "general") is None
    await alice.send({"type": "ping", "ts": 0})  # the room socket stays open: the room is public
    await alice.recv_type("pong")
    await post_acked(alice, "back again", "a1")
    assert (await _state(watcher, "general", joined=True))["last_read"] == 0  # joined before it was stored
    back = await _state(watcher, "general", last_seq=1)
    assert (back["unread"], back["last_message"]["body"]) == (0, "back again")
    assert await sync_to_async(_cursor)("alice", "general") is not None


async def test_a_lost_broadcast_is_noticed_by_the_next_and_the_count_read_afresh(
        people, open_socket, open_user_socket, monkeypatch):
    monkeypatch.setattr(user_socket, "GAP_WAIT_SECONDS", 0.05)
    bob, _ = await open_socket("/ws/rooms/general/", bearer=people["bob"])
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    watcher, _ = await open_user_socket(bearer=people["alice"])
    tell = hub_module.Hub._tell_watchers
    dropped = []

    def lossy(self, room, watchers, texts, before=None):
        if not dropped:
            dropped.append(texts)  # as if Redis had lost this one event for this process
            return None
        return tell(self, room, watchers, texts, before)

    monkeypatch.setattr(hub_module.Hub, "_tell_watchers", lossy)
    await post_acked(bob, "lost to the user socket", "b1")
    await post_acked(bob, "this one shows the gap", "b2")
    refreshed = await _state(watcher, "general", last_seq=2)
    assert (refreshed["unread"], refreshed["last_version"]) == (2, 2)
    assert dropped and json.loads(dropped[0][0])["seq"] == 1


async def test_the_user_socket_has_the_room_sockets_auth_and_frame_rules(people, open_user_socket):
    nobody = socket_for(USER)
    assert (await nobody.connect())[0]
    assert await nobody.closed_with() == 4401
    foreign = socket_for(USER, bearer=people["alice"], origin="https://evil.example")
    assert not (await foreign.connect())[0]
    owner = await sync_to_async(get_user_model().objects.get)(username="owner")
    watcher, hello = await open_user_socket(cookie=await sync_to_async(session_cookie)(owner))
    assert hello["user"]["username"] == "owner"
    await watcher.send({"type": "message", "body": "not here"})
    assert (await watcher.recv())["code"] == "bad_request"
    await watcher.send("{not json")
    assert (await watcher.recv())["code"] == "bad_json"
    await watcher.send_bytes(b"\x00\x01")
    assert (await watcher.recv())["code"] == "bad_request"
    await watcher.send({"type": "ping", "ts": [1, 2]})
    assert await watcher.recv() == {"type": "pong", "ts": [1, 2]}


async def test_a_revoked_token_closes_the_user_socket_4401(people, open_user_socket):
    from chat.actions import authority
    from chat.models import ApiToken

    watcher, _ = await open_user_socket(bearer=people["alice"])
    token_ids = await sync_to_async(lambda: list(ApiToken.objects.filter(user__username="alice")
                                                 .values_list("pk", flat=True)))()
    await sync_to_async(authority.tokens_revoke)(token_ids=token_ids)
    assert await watcher.closed_with() == 4401


def test_the_rooms_api_gives_the_state_of_joined_rooms(people):
    general = Room.objects.get(slug="general")
    owner = get_user_model().objects.get(username="owner")
    carol = make_user("carol")
    Membership.objects.create(room=general, user=carol, last_read=0)
    for i in range(3):
        Message.objects.create(room=general, seq=i + 1, version=i + 1, user=owner, body=f"m{i}")
    Room.objects.filter(pk=general.pk).update(last_seq=3, last_version=3)
    client = Client()
    client.force_login(carol)
    rooms = {r["slug"]: r for r in client.get("/api/rooms/").json()["rooms"]}
    assert rooms["general"]["unread"] == 3 and rooms["general"]["last_read"] == 0
    assert rooms["general"]["last_message"]["body"] == "m2" and rooms["general"]["joined"] is True
    assert rooms["random"]["joined"] is False and "unread" not in rooms["random"]
    assert "online" in rooms["general"] and "online" in rooms["random"]


@override_settings(CHAT_ROOM_STATE_INTERVAL=0.5)
async def test_a_busy_room_costs_the_user_socket_a_few_frames_and_the_last_is_exact(people, open_socket,
                                                                                   open_user_socket):
    bob, _ = await open_socket("/ws/rooms/general/", bearer=people["bob"])
    alice, _ = await open_socket("/ws/rooms/general/", bearer=people["alice"])
    watcher, _ = await open_user_socket(bearer=people["alice"])
    for i in range(8):  # one batch, one broadcast each: each acked before the next is sent
        await bob.send({"type": "message", "body": f"burst {i}", "client_id": f"b{i}"})
        await bob.recv_type("ack")
    frames = []
    while not frames or frames[-1]["last_seq"] < 8:
        frames.append(await watcher.recv_type("room_state"))
    assert frames[-1]["unread"] == 8 and frames[-1]["last_message"]["body"] == "burst 7"
    # The first change is written at once, then at most one state per interval (the latest).
    assert len(frames) <= 3, [f["last_seq"] for f in frames]
    assert await watcher.comm.receive_nothing(timeout=0.7)  # and nothing stale trails behind
