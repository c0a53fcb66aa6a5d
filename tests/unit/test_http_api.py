"""HTTP: token issue, rooms, members, history, healthz, and the pages' access rules."""

import json

import pytest
from django.test import Client

from chat.domain import services
from chat.models import ApiToken, Membership, Room
from tests.factories import PASSWORD, make_room, make_token, make_user

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post_json(client, url, data, **extra):
    return client.post(url, json.dumps(data), content_type="application/json", **extra)


def test_token_issued_for_username_and_password_json_or_form():
    make_user("alice")
    response = post_json(Client(), "/api/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 201
    raw = response.json()["token"]
    assert services.token_authenticate(raw=raw).username == "alice"
    response = Client().post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 201 and response.json()["token"] != raw


def test_token_refused_for_wrong_password_or_no_credentials():
    make_user("alice")
    response = post_json(Client(), "/api/token/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"
    response = post_json(Client(), "/api/token/", {})
    assert response.status_code == 401
    assert ApiToken.objects.count() == 0


def test_token_for_session_needs_csrf():
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = post_json(client, "/api/token/", {})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    client.get("/")  # sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = post_json(client, "/api/token/", {}, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201


def test_bad_json_body_is_400():
    response = Client().post("/api/token/", "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "bad_json"


def test_rooms_list_shows_visible_rooms_with_online_counts():
    alice, bob = make_user(), make_user()
    make_room("open")
    make_room("hidden", private=True, members=[bob])
    response = Client().get("/api/rooms/", **bearer(make_token(alice)))
    assert response.status_code == 200
    rooms = response.json()["rooms"]
    assert {"slug": "open", "name": "Open", "private": False, "online": 0, "joined": False} in rooms
    assert "hidden" not in {r["slug"] for r in rooms}
    assert "hidden" in {r["slug"] for r in Client().get("/api/rooms/", **bearer(make_token(bob))).json()["rooms"]}


def test_rooms_need_credentials():
    assert Client().get("/api/rooms/").status_code == 401
    response = Client().get("/api/rooms/", **bearer("not-a-token"))
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


def test_room_create_returns_201_and_makes_caller_member():
    alice = make_user()
    response = post_json(Client(), "/api/rooms/", {"name": "Ops", "slug": "ops", "private": True}, **bearer(make_token(alice)))
    assert response.status_code == 201
    assert response.json() == {"slug": "ops", "name": "Ops", "private": True, "online": 0}
    assert Membership.objects.filter(room__slug="ops", user=alice).exists()
    again = post_json(Client(), "/api/rooms/", {"name": "Ops", "slug": "ops"}, **bearer(make_token(alice)))
    assert again.status_code == 400 and again.json()["error"] == "bad_request"


def test_room_create_with_session_needs_csrf():
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user())
    response = post_json(client, "/api/rooms/", {"name": "X", "slug": "x"})
    assert response.status_code == 403
    assert not Room.objects.filter(slug="x").exists()


def test_members_added_by_creator_or_staff_only():
    owner, stranger = make_user("owner"), make_user("stranger")
    make_user("newbie")
    services.room_create(user=owner, name="Team", slug="team", private=False)
    url = "/api/rooms/team/members/"
    response = post_json(Client(), url, {"username": "newbie"}, **bearer(make_token(stranger)))
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    response = post_json(Client(), url, {"username": "newbie"}, **bearer(make_token(owner)))
    assert response.status_code == 201 and response.json()["user"]["username"] == "newbie"
    response = post_json(Client(), url, {"username": "ghost"}, **bearer(make_token(owner)))
    assert response.status_code == 400
    members = Client().get(url, **bearer(make_token(owner))).json()["members"]
    assert [m["username"] for m in members] == ["newbie", "owner"]
    assert post_json(Client(), "/api/rooms/none/members/", {"username": "x"}, **bearer(make_token(owner))).status_code == 404


def test_messages_history_pages_and_errors():
    alice, outsider = make_user(), make_user()
    room = make_room("general")
    secret = make_room("secret", private=True, members=[alice])
    for n in range(5):
        services.message_create(room=room, user=alice, body=f"m{n + 1}", client_id=None)
    token = make_token(alice)
    get = lambda q: Client().get(f"/api/rooms/general/messages/{q}", **bearer(token))  # noqa: E731
    data = get("?limit=2").json()
    assert [m["seq"] for m in data["messages"]] == [4, 5] and data["has_more"] is True
    data = get("?before=3").json()
    assert [m["body"] for m in data["messages"]] == ["m1", "m2"] and data["has_more"] is False
    data = get("?after=3").json()
    assert [m["seq"] for m in data["messages"]] == [4, 5] and data["has_more"] is False
    assert data["messages"][0]["user"] == {"id": alice.pk, "username": alice.username}
    for bad in ("?limit=0", "?limit=101", "?before=x", "?after=-1"):
        response = get(bad)
        assert response.status_code == 400 and response.json()["error"] == "bad_request", bad
    assert Client().get("/api/rooms/nope/messages/", **bearer(token)).status_code == 404
    response = Client().get(f"/api/rooms/{secret.slug}/messages/", **bearer(make_token(outsider)))
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert Client().get("/api/rooms/general/messages/").status_code == 401


def test_wrong_method_is_405_with_allow():
    response = Client().delete("/api/rooms/", **bearer(make_token(make_user())))
    assert response.status_code == 405 and "GET" in response["Allow"]


def test_healthz_reports_database_and_channel_layer():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_pages_need_login_and_private_room_page_is_403():
    alice, bob = make_user("alice"), make_user("bob")
    make_room("secret", private=True, members=[bob])
    assert Client().get("/").status_code == 302
    client = Client()
    client.force_login(alice)
    assert client.get("/rooms/secret/").status_code == 403
    assert client.get("/rooms/nope/").status_code == 404
    page = client.get("/rooms/lobby/")
    assert page.status_code == 200 and b'data-room-slug="lobby" ' in page.content and b'data-room-ws-path="/ws/rooms/{slug}/"' in page.content


def test_lobby_exists_after_migrate():
    assert Room.objects.filter(slug="lobby", private=False).exists()


def test_signup_logs_in_and_room_form_creates_room():
    client = Client()
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    )
    assert response.status_code == 302
    response = client.post("/", {"name": "Carol's room", "slug": "carols", "private": "on"})
    assert response.status_code == 302 and response["Location"] == "/rooms/carols/"
    assert Room.objects.get(slug="carols").private is True


def test_healthz_is_503_when_redis_is_down():
    from django.test import override_settings

    from tests.support.server import free_port

    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["redis"].startswith("error") and body["database"] == "ok"
