"""Services: gap-free seq under real concurrency, idempotency, validation, rooms, members, tokens."""

import threading

import pytest
from django.db import connection

from chat.domain import services
from chat.models import ApiToken, Membership, Message, Room
from chat.protocol import inbound
from chat.protocol.errors import ChatError
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db


def _run_threads(count: int, target) -> list:
    """Run target(i) on `count` threads released together; return results, re-raise failures."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(i):
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_get_gap_free_unique_seqs():
    room = make_room()
    users = [make_user() for _ in range(6)]

    def send(i):
        return [
            services.message_create(room=room, user=users[i], body=f"{i}-{n}", client_id=None)[0]["seq"]
            for n in range(20)
        ]

    results = _run_threads(len(users), send)
    seqs = sorted(seq for per_thread in results for seq in per_thread)
    assert seqs == list(range(1, 121))
    for per_thread in results:
        assert per_thread == sorted(per_thread), "one sender's messages must be in its own order"
    assert list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True)) == seqs
    room.refresh_from_db()
    assert room.last_seq == 120


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_of_one_client_id_store_one_message():
    room = make_room()
    user = make_user()
    results = _run_threads(6, lambda i: services.message_create(room=room, user=user, body="once", client_id="c-1"))
    frames = [frame for frame, _created in results]
    assert sum(created for _frame, created in results) == 1
    assert {(f["id"], f["seq"]) for f in frames} == {(frames[0]["id"], 1)}
    assert Message.objects.filter(room=room).count() == 1
    room.refresh_from_db()
    assert room.last_seq == 1


def test_message_create_returns_protocol_frame():
    room = make_room("general")
    user = make_user("alice")
    frame, created = services.message_create(room=room, user=user, body="hi", client_id="x1")
    assert created is True
    assert frame["type"] == "message"
    assert frame["seq"] == 1 and frame["room"] == "general" and frame["body"] == "hi"
    assert frame["user"] == {"id": user.pk, "username": "alice"}
    assert frame["client_id"] == "x1" and frame["attachment"] is None
    assert frame["created"].endswith("Z")


def test_same_client_id_in_another_room_or_by_another_user_is_a_new_message():
    user, other = make_user(), make_user()
    room_a, room_b = make_room(), make_room()
    first, _ = services.message_create(room=room_a, user=user, body="a", client_id="same")
    again, created_again = services.message_create(room=room_a, user=user, body="changed", client_id="same")
    assert created_again is False and again["id"] == first["id"] and again["body"] == "a"
    _, created_b = services.message_create(room=room_b, user=user, body="b", client_id="same")
    _, created_other = services.message_create(room=room_a, user=other, body="c", client_id="same")
    assert created_b and created_other
    assert Message.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "client_id", "code"),
    [
        ("", None, "bad_request"),
        ("   \n ", None, "bad_request"),
        (42, None, "bad_request"),
        (None, None, "bad_request"),
        ("x" * 4001, None, "too_long"),
        ("ok", 7, "bad_request"),
        ("ok", "c" * 65, "bad_request"),
        ("ok", "", "bad_request"),
        ("nul\x00inside", None, "bad_request"),  # PostgreSQL text cannot hold NUL
        ("ok", "nul\x00", "bad_request"),
    ],
)
def test_message_validate_refuses_bad_fields(body, client_id, code):
    with pytest.raises(ChatError) as info:
        inbound.check_message({"body": body, "client_id": client_id})
    assert info.value.code == code


def test_message_validate_trims_and_accepts_the_limit():
    body, client_id = inbound.check_message({"body": "  " + "é" * 4000 + "\n", "client_id": "c" * 64})
    assert body == "é" * 4000 and client_id == "c" * 64


def test_room_create_makes_creator_a_member_and_refuses_duplicate_slug():
    user = make_user()
    room = services.room_create(user=user, name="Team Room", slug=None, private=True)
    assert room.slug == "team-room" and room.private and room.created_by == user
    assert Membership.objects.filter(room=room, user=user).exists()
    with pytest.raises(ChatError) as info:
        services.room_create(user=user, name="Other", slug="team-room")
    assert info.value.code == "bad_request"
    assert Room.objects.filter(slug="team-room").count() == 1


@pytest.mark.parametrize(
    ("name", "slug", "private"),
    [("", "a", False), ("x" * 101, "a", False), ("ok", "Not A Slug", False), ("ok", "ok", "yes"), (None, "a", False)],
)
def test_room_create_refuses_bad_fields(name, slug, private):
    with pytest.raises(ChatError):
        services.room_create(user=make_user(), name=name, slug=slug, private=private)


def test_membership_add_only_by_creator_or_staff():
    owner, stranger, staff, newcomer = make_user(), make_user(), make_user(is_staff=True), make_user("newbie")
    room = services.room_create(user=owner, name="Secret", slug="secret", private=True)
    with pytest.raises(ChatError) as info:
        services.membership_add(room=room, actor=stranger, username="newbie")
    assert info.value.code == "forbidden"
    _, created = services.membership_add(room=room, actor=owner, username="newbie")
    assert created
    _, created_again = services.membership_add(room=room, actor=staff, username="newbie")
    assert created_again is False
    assert Membership.objects.filter(room=room, user=newcomer).count() == 1
    with pytest.raises(ChatError):
        services.membership_add(room=room, actor=owner, username="nobody")


def test_token_is_stored_hashed_and_revocable():
    user = make_user()
    token, raw = services.token_create(user=user, name="bot")
    assert raw not in (token.digest, token.prefix) and raw.startswith(token.prefix)
    assert not ApiToken.objects.filter(digest__contains=raw).exists()
    assert services.token_authenticate(raw=raw) == user
    assert services.token_authenticate(raw=raw + "x") is None
    services.token_revoke(token=token)
    assert services.token_authenticate(raw=raw) is None


def test_token_of_inactive_user_is_refused():
    user = make_user()
    _, raw = services.token_create(user=user)
    user.is_active = False
    user.save()
    assert services.token_authenticate(raw=raw) is None
