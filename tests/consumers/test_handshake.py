"""Opening a room socket: origin check, the three ways to authenticate, close codes, hello."""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from chat.domain import services
from tests.consumers.conftest import session_cookie, socket_for
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def lobby(db):
    return make_room("general")


async def test_socket_without_credentials_is_closed_4401(lobby):
    sock = socket_for("/ws/rooms/general/")
    connected, _ = await sock.connect()
    assert connected
    assert await sock.closed_with() == 4401


async def test_socket_with_unknown_or_revoked_token_is_closed_4401(lobby, alice):
    token, raw = await sync_to_async(services.token_create)(user=alice)
    sock = socket_for("/ws/rooms/general/", bearer=raw + "nope")
    await sock.connect()
    assert await sock.closed_with() == 4401
    await sync_to_async(services.token_revoke)(token=token)
    sock = socket_for(f"/ws/rooms/general/?token={raw}")
    await sock.connect()
    assert await sock.closed_with() == 4401


async def test_socket_to_missing_room_is_closed_4404(alice):
    sock = socket_for("/ws/rooms/nowhere/", cookie=await sync_to_async(session_cookie)(alice))
    await sock.connect()
    assert await sock.closed_with() == 4404


async def test_private_room_refuses_non_member_with_4403_and_admits_member(alice, open_socket):
    bob = await sync_to_async(make_user)("bob")
    await sync_to_async(make_room)("secret", private=True, members=[bob])
    sock = socket_for("/ws/rooms/secret/", cookie=await sync_to_async(session_cookie)(alice))
    await sock.connect()
    assert await sock.closed_with() == 4403
    _, hello = await open_socket("/ws/rooms/secret/", bearer=await sync_to_async(make_token)(bob))
    assert hello["room"] == {"slug": "secret", "name": "Secret", "private": True}


async def test_foreign_origin_is_refused_at_handshake(lobby, alice):
    sock = socket_for("/ws/rooms/general/", cookie=await sync_to_async(session_cookie)(alice), origin="https://evil.example")
    connected, _ = await sock.connect()
    assert connected is False


async def test_allowed_origin_and_missing_origin_are_admitted(lobby, alice, open_socket):
    cookie = await sync_to_async(session_cookie)(alice)
    _, hello = await open_socket("/ws/rooms/general/", cookie=cookie, origin="https://localhost:8443")
    assert hello["user"]["username"] == "alice"
    _, hello = await open_socket("/ws/rooms/general/", cookie=cookie)
    assert hello["user"]["username"] == "alice"


@pytest.mark.parametrize("how", ["session", "bearer", "query"])
async def test_each_auth_method_opens_with_hello(how, lobby, alice, open_socket):
    if how == "session":
        auth = {"cookie": await sync_to_async(session_cookie)(alice)}
        path = "/ws/rooms/general/"
    elif how == "bearer":
        auth = {"bearer": await sync_to_async(make_token)(alice)}
        path = "/ws/rooms/general/"
    else:
        auth = {}
        path = f"/ws/rooms/general/?token={await sync_to_async(make_token)(alice)}"
    _, hello = await open_socket(path, **auth)
    assert hello["user"] == {"id": alice.pk, "username": "alice"}
    assert hello["online"] == [{"id": alice.pk, "username": "alice"}]
    assert hello["messages"] == [] and hello["last_seq"] == 0 and hello["truncated"] is False


async def _fill(room, user, count):
    def fill():
        for n in range(count):
            services.message_create(room=room, user=user, body=f"m{n + 1}", client_id=None)

    await sync_to_async(fill)()


async def test_hello_has_latest_50_oldest_first(lobby, alice, open_socket):
    await _fill(lobby, alice, 60)
    _, hello = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(alice))
    assert [m["seq"] for m in hello["messages"]] == list(range(11, 61))
    assert hello["last_seq"] == 60 and hello["truncated"] is False
    assert hello["messages"][-1]["body"] == "m60"


async def test_hello_after_recovers_everything_newer(lobby, alice, open_socket):
    await _fill(lobby, alice, 60)
    token = await sync_to_async(make_token)(alice)
    _, hello = await open_socket("/ws/rooms/general/?after=3", bearer=token)
    assert [m["seq"] for m in hello["messages"]] == list(range(4, 61))
    assert hello["truncated"] is False
    _, hello = await open_socket("/ws/rooms/general/?after=60", bearer=token)
    assert hello["messages"] == [] and hello["last_seq"] == 60


async def test_hello_after_is_truncated_past_the_recovery_cap(lobby, alice, open_socket):
    await _fill(lobby, alice, 12)
    with override_settings(CHAT_RECOVERY_MAX=5):
        sock, hello = await open_socket("/ws/rooms/general/?after=2", bearer=await sync_to_async(make_token)(alice))
    assert [m["seq"] for m in hello["messages"]] == [3, 4, 5, 6, 7]
    assert hello["truncated"] is True and hello["last_seq"] == 12


async def test_malformed_after_gets_latest_then_an_error(lobby, alice, open_socket):
    await _fill(lobby, alice, 3)
    sock, hello = await open_socket("/ws/rooms/general/?after=-1", bearer=await sync_to_async(make_token)(alice))
    assert [m["seq"] for m in hello["messages"]] == [1, 2, 3]
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"


async def test_session_wins_over_a_token_and_a_dead_session_falls_back_to_it(lobby, alice, open_socket):
    bob = await sync_to_async(make_user)("bob")
    bob_token = await sync_to_async(make_token)(bob)
    cookie = await sync_to_async(session_cookie)(alice)
    _, hello = await open_socket("/ws/rooms/general/", cookie=cookie, bearer=bob_token)
    assert hello["user"]["username"] == "alice"
    _, hello = await open_socket("/ws/rooms/general/", cookie="not-a-session", bearer=bob_token)
    assert hello["user"]["username"] == "bob"
    sock = socket_for("/ws/rooms/general/", cookie="not-a-session")
    await sock.connect()
    assert await sock.closed_with() == 4401


async def test_the_session_cookie_is_read_beside_cookies_of_any_shape(lobby, alice, open_socket):
    """Other cookies on the domain (an illegal name, a stray quote) are Django's to ignore, not a failed handshake."""
    cookie = await sync_to_async(session_cookie)(alice)
    for others in ('; theme=dark; bad{name}=1', '; a="unterminated'):
        _, hello = await open_socket("/ws/rooms/general/", cookie=cookie + others)
        assert hello["user"]["username"] == "alice", others


async def test_a_connection_the_database_dropped_costs_the_handshake_nothing(lobby, alice, open_socket, monkeypatch,
                                                                             settings):
    """The first statement on a connection PostgreSQL closed (a restart) fails; the handshake reconnects once."""
    from django.db import OperationalError

    from chat.domain import selectors

    settings.CHAT_LOOP_READS = False  # PostgreSQL's path: the database thread

    real = selectors.room_socket_open
    calls = []

    def dropped_once(**kwargs):
        calls.append(kwargs["slug"])
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(selectors, "room_socket_open", dropped_once)
    _, hello = await open_socket("/ws/rooms/general/", bearer=await sync_to_async(make_token)(alice))
    assert hello["user"]["username"] == "alice"
    assert calls == ["general", "general"]
