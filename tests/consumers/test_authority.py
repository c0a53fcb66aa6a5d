"""Protocol section 8: a socket lives only as long as what let it in (one process, in-memory layer)."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from chat.actions import authority
from chat.models import ApiToken, Message, Room
from tests.consumers.conftest import session_cookie
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def ended_with(sock, timeout: float = 5) -> tuple[int, list[dict]]:
    """Read until the close; return its code and the frames that came before it."""
    frames = []
    while True:
        output = await sock.comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code"), frames
        frames.append(json.loads(output["text"]))


async def still_open(sock) -> None:
    """The socket answers a ping: it was not closed."""
    await sock.send({"type": "ping", "ts": "alive?"})
    assert await sock.recv_type("pong") == {"type": "pong", "ts": "alive?"}


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def general(db):
    return make_room("general")


async def test_logout_closes_the_sockets_of_that_session_only(alice, general, open_socket):
    cookie = await sync_to_async(session_cookie)(alice)
    other_tab = await sync_to_async(session_cookie)(alice)  # another browser: another session
    by_session, _ = await open_socket("/ws/rooms/general/", cookie=cookie)
    other, _ = await open_socket("/ws/rooms/general/", cookie=other_tab)
    by_token, _ = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(alice))

    def logout():
        client = Client()
        client.cookies["sessionid"] = cookie
        assert client.post("/accounts/logout/").status_code == 302

    await sync_to_async(logout)()
    assert (await ended_with(by_session))[0] == 4401
    await still_open(other)
    await still_open(by_token)


async def test_a_deleted_session_closes_its_sockets(alice, general, open_socket):
    cookie = await sync_to_async(session_cookie)(alice)
    sock, _ = await open_socket("/ws/rooms/general/", cookie=cookie)
    await sync_to_async(lambda: SessionStore(cookie).delete())()
    assert (await ended_with(sock))[0] == 4401


async def test_an_expiring_session_closes_its_sockets_when_it_expires(alice, general, open_socket):
    def short_session():
        store = SessionStore(session_cookie(alice))
        store.set_expiry(timezone.now() + timedelta(seconds=1))
        store.save()
        return store.session_key

    cookie = await sync_to_async(short_session)()
    sock, _ = await open_socket("/ws/rooms/general/", cookie=cookie)
    await sock.send({"type": "ping", "ts": 1})
    assert (await sock.recv())["type"] == "pong"  # open until the expiry
    code, _ = await ended_with(sock, timeout=10)
    assert code == 4401


async def test_a_session_has_one_expiry_check_however_many_of_its_sockets_are_open(alice, general, open_socket):
    from chat.domain.auth import session_digest
    from chat.realtime.authority import get_socket_index

    cookie = await sync_to_async(session_cookie)(alice)
    index = get_socket_index()
    first, _ = await open_socket("/ws/rooms/general/", cookie=cookie)
    check = index._session_checks[session_digest(cookie)]
    second, _ = await open_socket("/ws/rooms/general/", cookie=cookie)
    assert index._session_checks == {session_digest(cookie): check}  # the second socket shares it
    await first.close()
    await still_open(second)
    assert index._session_checks[session_digest(cookie)] is check and not check.timer.cancelled()
    await second.close()
    assert not index._session_checks and check.timer.cancelled()  # the last socket took the check with it


async def test_a_revoked_token_closes_its_sockets_and_nothing_more_is_stored(alice, general, open_socket):
    raw = await sync_to_async(make_token)(alice)
    kept = await sync_to_async(make_token)(alice)
    revoked, _ = await open_socket("/ws/rooms/general/", bearer=raw)
    other, _ = await open_socket("/ws/rooms/general/", bearer=kept)
    token_id = await sync_to_async(lambda: ApiToken.objects.get(prefix=raw[:8]).pk)()
    await sync_to_async(authority.tokens_revoke)(token_ids=[token_id])
    assert (await ended_with(revoked))[0] == 4401
    await revoked.send({"type": "message", "body": "after the close", "client_id": "late"})
    await still_open(other)
    assert not await sync_to_async(Message.objects.filter(client_id="late").exists)()


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
async def test_a_deactivated_or_deleted_user_loses_every_socket(how, alice, general, open_socket):
    make_room_sync = sync_to_async(make_room)
    await make_room_sync("second")
    first, _ = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(alice))
    second, _ = await open_socket("/ws/rooms/second/", cookie=await sync_to_async(session_cookie)(alice))
    bob = await sync_to_async(make_user)("bob")
    bystander, _ = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(bob))

    def end_alice():
        if how == "deactivated":
            alice.is_active = False
            alice.save()
        else:
            alice.delete()

    await sync_to_async(end_alice)()
    assert (await ended_with(first))[0] == 4401
    assert (await ended_with(second))[0] == 4401
    await still_open(bystander)


async def test_a_member_removed_from_a_private_room_is_closed_4403_there_only(alice, open_socket):
    owner = await sync_to_async(make_user)("owner")
    await sync_to_async(make_room)("vault", private=True, members=[owner, alice], created_by=owner)
    await sync_to_async(make_room)("open-room")
    token = await sync_to_async(make_token)(alice)
    in_vault, _ = await open_socket("/ws/rooms/vault/", bearer=token)
    elsewhere, _ = await open_socket("/ws/rooms/open-room/", bearer=token)
    watcher, _ = await open_socket("/ws/rooms/vault/", bearer=await sync_to_async(make_token)(owner))
    await in_vault.send({"type": "ping", "ts": 0})
    await in_vault.recv_type("pong")
    owner_token = await sync_to_async(make_token)(owner)
    response = await sync_to_async(lambda: Client().delete(
        "/api/rooms/vault/members/alice/", HTTP_AUTHORIZATION=f"Bearer {owner_token}"))()
    assert response.status_code == 200, response.content
    code, before_close = await ended_with(in_vault)
    assert code == 4403
    # The watcher's presence change (alice left) is the room's news; alice's socket got none of it after its close.
    left = await watcher.recv_type("presence")
    assert [u["username"] for u in left["left"]] == ["alice"]
    await watcher.send({"type": "message", "body": "secret", "client_id": "s1"})
    await watcher.recv_type("ack")
    assert all(f.get("body") != "secret" for f in before_close)
    await still_open(elsewhere)


async def test_making_a_room_private_closes_non_members_4403(alice, open_socket):
    # Opening a public room joins it, and those who joined stay members when it turns
    # private; alice left it (her socket stays open while it is public), so she is closed.
    owner = await sync_to_async(make_user)("owner")
    room = await sync_to_async(make_room)("town", members=[owner], created_by=owner)
    outsider, _ = await open_socket("/ws/rooms/town/", bearer=await sync_to_async(make_token)(alice))
    member, _ = await open_socket("/ws/rooms/town/", bearer=await sync_to_async(make_token)(owner))
    await sync_to_async(authority.membership_remove)(room=room, actor=alice, username="alice")

    await still_open(outsider)

    def make_private():
        room.private = True
        room.save()

    await sync_to_async(make_private)()
    assert (await ended_with(outsider))[0] == 4403
    await still_open(member)


async def test_a_deleted_room_closes_every_socket_to_it_4404(alice, general, open_socket):
    sock, _ = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(alice))
    await sync_to_async(lambda: Room.objects.filter(slug="general").delete())()
    assert (await ended_with(sock))[0] == 4404


def test_removing_a_member_over_http_follows_who_may(transactional_db):
    owner, alice, bob = make_user("owner"), make_user("alice"), make_user("bob")
    make_room("club", private=True, members=[owner, alice, bob], created_by=owner)

    def delete(actor, username):
        return Client().delete(f"/api/rooms/club/members/{username}/", HTTP_AUTHORIZATION=f"Bearer {make_token(actor)}")

    refused = delete(alice, "bob")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert delete(alice, "alice").status_code == 200  # leaving
    assert delete(owner, "bob").json() == {"room": "club", "removed": "bob"}
    missing = delete(owner, "bob")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert Client().delete("/api/rooms/club/members/owner/").status_code == 401


async def test_a_failing_socket_does_not_spare_the_others(alice, general, open_socket, monkeypatch):
    from chat.realtime.consumer import RoomConsumer

    token = await sync_to_async(make_token)(alice)
    first, _ = await open_socket("/ws/rooms/general/", bearer=token)
    second, _ = await open_socket("/ws/rooms/general/", bearer=token)
    real_end = RoomConsumer.end
    calls = []

    async def flaky_end(self, code, reason):
        calls.append(code)
        if len(calls) == 1:
            raise RuntimeError("this socket's close failed")
        await real_end(self, code, reason)

    monkeypatch.setattr(RoomConsumer, "end", flaky_end)
    await sync_to_async(authority.user_ended)(user_id=alice.pk)
    # One of the two failed to end; the other still closed.
    codes = []
    for sock in (first, second):
        try:
            codes.append((await ended_with(sock, timeout=2))[0])
        except Exception:  # noqa: BLE001 - the failed one stays open
            codes.append(None)
    assert sorted(codes, key=str) == [4401, None] and calls == [4401, 4401]


def test_the_announcements_are_sent_after_commit_not_before(transactional_db, monkeypatch):
    from django.db import transaction

    sent = []

    class Layer:
        async def group_send(self, group, event):
            sent.append((group, event))

    monkeypatch.setattr(authority, "get_channel_layer", Layer)
    with transaction.atomic():
        authority.user_ended(user_id=7)
        assert sent == []
    assert sent == [("chat.authority", {"type": "authority.end", "kind": "user", "user": 7})]
