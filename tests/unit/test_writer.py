"""Group commit (chat/writer.py, services.message_create_many): one transaction, the same guarantees."""

import pytest
from django.db import IntegrityError

from chat.domain import services
from chat.models import Message, Room
from chat.protocol.errors import ChatError
from chat.store import writer
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def draft(room, user, body, client_id=None):
    return services.MessageDraft(room=room, user=user, body=body, client_id=client_id)


def test_batch_gives_each_room_consecutive_seqs_in_submission_order():
    a, b = make_room("a"), make_room("b")
    alice, bob = make_user("alice"), make_user("bob")
    services.message_create(room=a, user=alice, body="before", client_id=None)
    results = services.message_create_many(drafts=[
        draft(a, alice, "a1"), draft(b, bob, "b1"), draft(a, bob, "a2"), draft(b, alice, "b2"), draft(a, alice, "a3"),
    ])
    assert [(f["room"], f["seq"], f["body"], created) for f, created in results] == [
        ("a", 2, "a1", True), ("b", 1, "b1", True), ("a", 3, "a2", True), ("b", 2, "b2", True), ("a", 4, "a3", True),
    ]
    stored = {(m.room.slug, m.seq): (m.pk, m.body) for m in Message.objects.select_related("room")}
    assert all(stored[(f["room"], f["seq"])] == (f["id"], f["body"]) for f, _ in results)
    assert Room.objects.get(slug="a").last_seq == 4 and Room.objects.get(slug="b").last_seq == 2


def test_batch_answers_a_client_id_repeated_within_it_with_the_first_message():
    room, alice = make_room("r"), make_user("alice")
    results = services.message_create_many(drafts=[
        draft(room, alice, "new", "c1"), draft(room, alice, "other", "c2"), draft(room, alice, "resent", "c1"),
    ])
    first = results[0][0]
    assert [(f["id"], f["seq"], f["body"], created) for f, created in results] == [
        (first["id"], 1, "new", True), (results[1][0]["id"], 2, "other", True), (first["id"], 1, "new", False),
    ]
    assert Message.objects.count() == 2 and Room.objects.get(slug="r").last_seq == 2


def test_a_client_id_stored_before_spoils_the_batch_and_store_answers_it_one_by_one():
    room, alice = make_room("r"), make_user("alice")
    old, _ = services.message_create(room=room, user=alice, body="old", client_id="c0")
    drafts = [draft(room, alice, "again", "c0"), draft(room, alice, "new", "c1"), draft(room, alice, "resent", "c1")]
    with pytest.raises(IntegrityError):
        services.message_create_many(drafts=drafts)
    assert Message.objects.count() == 1 and Room.objects.get(slug="r").last_seq == 1  # rolled back whole
    results = writer.store(drafts)
    assert [(f["id"], f["body"], created) for f, created in results] == [
        (old["id"], "old", False), (results[1][0]["id"], "new", True), (results[1][0]["id"], "new", False),
    ]
    assert Message.objects.count() == 2 and Room.objects.get(slug="r").last_seq == 2


def test_store_keeps_the_good_drafts_of_a_batch_that_one_spoiled():
    good, doomed, alice = make_room("good"), make_room("doomed"), make_user("alice")
    drafts = [draft(good, alice, "one"), draft(doomed, alice, "lost"), draft(good, alice, "two")]
    Room.objects.filter(pk=doomed.pk).delete()  # deleted while the drafts waited
    results = writer.store(drafts)
    assert [r[0]["seq"] for r in (results[0], results[2])] == [1, 2]
    assert isinstance(results[1], ChatError) and results[1].code == "not_found"
    assert list(Message.objects.values_list("body", flat=True).order_by("seq")) == ["one", "two"]
