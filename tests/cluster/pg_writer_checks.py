"""Group-commit checks run inside the cluster's Django, on its real PostgreSQL.

On PostgreSQL a batch of messages is one statement with its rows as arrays (chat/store/queries.py),
sent by the writer from the event loop on a psycopg AsyncConnection: code the unit tier,
on SQLite, never runs. tests/cluster/test_cluster.py runs `check()`
through `manage.py shell`; each check raises AssertionError on a wrong answer, and the
last line printed is the JSON list of checks passed.
"""

import asyncio
import json
import threading
import uuid

from django.contrib.auth import get_user_model
from django.db import IntegrityError, close_old_connections

from chat.actions.messages import messages_committed
from chat.domain import services
from chat.models import Message, Room
from chat.protocol.errors import ChatError
from chat.store import writer


def _room(tag: str) -> Room:
    slug = f"pgw-{tag}-{uuid.uuid4().hex[:8]}"
    return Room.objects.create(slug=slug, name=slug)


def _user(tag: str):
    return get_user_model().objects.create_user(username=f"pgw-{tag}-{uuid.uuid4().hex[:8]}", password=None)


def _draft(room, user, body, client_id=None):
    return services.MessageDraft(room=room, user=user, body=body, client_id=client_id)


def _stored(room: Room) -> list[tuple[int, str]]:
    return list(Message.objects.filter(room=room).order_by("seq").values_list("seq", "body"))


def seqs_follow_submission_order_per_room():
    a, b, alice = _room("a"), _room("b"), _user("alice")
    services.message_create(room=a, user=alice, body="before", client_id=None)
    results = services.message_create_many(drafts=[
        _draft(a, alice, "a1"), _draft(b, alice, "b1"), _draft(a, alice, "a2", "k"), _draft(a, alice, "a3"),
    ])
    assert [(f["room"], f["seq"], f["body"], new) for f, new in results] == [
        (a.slug, 2, "a1", True), (b.slug, 1, "b1", True), (a.slug, 3, "a2", True), (a.slug, 4, "a3", True),
    ], results
    ids = [f["id"] for f, _ in results]
    assert [ids[0], ids[2], ids[3]] == sorted([ids[0], ids[2], ids[3]])  # ids follow seqs within a room
    assert _stored(a) == [(1, "before"), (2, "a1"), (3, "a2"), (4, "a3")] and _stored(b) == [(1, "b1")]
    assert Room.objects.get(pk=a.pk).last_seq == 4


def client_id_repeated_in_a_batch_answers_with_the_first():
    room, alice = _room("rep"), _user("alice")
    results = services.message_create_many(drafts=[_draft(room, alice, "new", "c1"), _draft(room, alice, "again", "c1")])
    assert results[1] == (results[0][0], False) and results[0][1] is True
    assert _stored(room) == [(1, "new")]


def client_id_stored_before_rolls_the_batch_back_and_store_answers_it():
    room, other, alice = _room("old"), _room("other"), _user("alice")
    old, _ = services.message_create(room=room, user=alice, body="old", client_id="c0")
    drafts = [_draft(other, alice, "elsewhere"), _draft(room, alice, "again", "c0"), _draft(room, alice, "new")]
    try:
        services.message_create_many(drafts=drafts)
    except IntegrityError:
        pass
    else:
        raise AssertionError("a client_id stored before must fail the batch")
    assert _stored(other) == [] and Room.objects.get(pk=room.pk).last_seq == 1  # nothing of it stayed
    results = writer.store(drafts)
    assert [(f["body"], f["seq"], new) for f, new in results] == [("elsewhere", 1, True), ("old", 1, False),
                                                                 ("new", 2, True)], results
    assert results[1][0]["id"] == old["id"]


def deleted_room_answers_not_found_and_the_rest_is_stored():
    good, doomed, alice = _room("good"), _room("doomed"), _user("alice")
    drafts = [_draft(good, alice, "one"), _draft(doomed, alice, "lost"), _draft(good, alice, "two")]
    Room.objects.filter(pk=doomed.pk).delete()
    results = writer.store(drafts)
    assert isinstance(results[1], ChatError) and results[1].code == "not_found"
    assert [r[0]["seq"] for r in (results[0], results[2])] == [1, 2]
    assert _stored(good) == [(1, "one"), (2, "two")]


def concurrent_batches_on_shared_rooms_neither_deadlock_nor_gap():
    rooms, alice = [_room(f"c{i}") for i in range(4)], _user("alice")
    errors = []

    def worker(n):
        try:
            for k in range(20):
                # Each batch touches every room, in a different order per thread.
                order = rooms[n % 4:] + rooms[:n % 4]
                services.message_create_many(drafts=[_draft(r, alice, f"{n}/{k}") for r in order])
        except Exception as exc:  # noqa: BLE001 - collected: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for room in rooms:
        assert [seq for seq, _ in _stored(room)] == list(range(1, 81))


def writer_stores_from_the_event_loop_and_falls_back_one_by_one():
    a, b, alice = _room("wa"), _room("wb"), _user("alice")
    old, _ = services.message_create(room=a, user=alice, body="old", client_id="c0")

    async def run():
        w = writer.MessageWriter(after_commit=messages_committed)
        first = await asyncio.gather(*[w.submit(d) for d in [
            _draft(a, alice, "a1"), _draft(b, alice, "b1"), _draft(a, alice, "a2", "k")]])
        own = w._pg is not None and not w._pg.closed  # stored on the loop, not in a thread
        # c0 was stored before: the batch fails on the constraint and is stored one by one.
        second = await asyncio.gather(*[w.submit(d) for d in [_draft(a, alice, "again", "c0"), _draft(b, alice, "b2")]],
                                      return_exceptions=True)
        return first, own, second

    first, own, second = asyncio.run(run())
    assert own
    assert [(f["body"], f["seq"], new) for f, new in first] == [("a1", 2, True), ("b1", 1, True), ("a2", 3, True)]
    assert second[0] == (old, False) or (second[0][0]["id"], second[0][1]) == (old["id"], False), second
    assert (second[1][0]["body"], second[1][0]["seq"], second[1][1]) == ("b2", 2, True)
    assert _stored(a) == [(1, "old"), (2, "a1"), (3, "a2")] and _stored(b) == [(1, "b1"), (2, "b2")]


ODD_BODIES = ["it's", 'say "hi"', "{a,b}", "back\\slash", "NULL", "", "tab\there", "ünï 🙂", "a,b", "(1,2)"]


def a_big_batch_of_odd_text_round_trips_on_both_paths():
    """120 drafts over 7 rooms, with quotes, braces, backslashes, NULL as text and mentions, stored as sent."""
    rooms, alice = [_room(f"odd{i}") for i in range(7)], _user("alice")

    def drafts(tag):
        return [services.MessageDraft(room=rooms[k % 7], user=alice, body=f"{ODD_BODIES[k % len(ODD_BODIES)]}{tag}{k}",
                                      client_id=None if k % 3 else f"{tag}-{k}", mentions="" if k % 4 else ",1:x,")
                for k in range(120)]

    sync = services.message_create_many(drafts=drafts("s"))

    async def run():
        w = writer.MessageWriter(after_commit=messages_committed)
        return await asyncio.gather(*[w.submit(d) for d in drafts("l")])

    on_loop = asyncio.run(run())
    for tag, results in (("s", sync), ("l", on_loop)):
        assert [f["body"] for f, _ in results] == [f"{ODD_BODIES[k % len(ODD_BODIES)]}{tag}{k}" for k in range(120)]
        assert all(new for _, new in results)
    for i, room in enumerate(rooms):
        bodies = [body for _, body in _stored(room)]
        expected = [d.body for d in drafts("s") if d.room.pk == room.pk] + [d.body for d in drafts("l")
                                                                           if d.room.pk == room.pk]
        assert bodies == expected, (i, bodies[:3], expected[:3])
        assert [seq for seq, _ in _stored(room)] == list(range(1, len(expected) + 1))
        stored = Room.objects.get(pk=room.pk)
        assert stored.last_seq == stored.last_version == len(expected)
    assert Message.objects.filter(room__in=rooms, mentions=",1:x,").count() == 2 * 30
    assert Message.objects.filter(room__in=rooms, client_id__isnull=True).count() == 2 * 80


CHECKS = [
    a_big_batch_of_odd_text_round_trips_on_both_paths,
    seqs_follow_submission_order_per_room,
    client_id_repeated_in_a_batch_answers_with_the_first,
    client_id_stored_before_rolls_the_batch_back_and_store_answers_it,
    deleted_room_answers_not_found_and_the_rest_is_stored,
    concurrent_batches_on_shared_rooms_neither_deadlock_nor_gap,
    writer_stores_from_the_event_loop_and_falls_back_one_by_one,
]


def check() -> None:
    from django.db import connection

    assert connection.vendor == "postgresql", connection.vendor
    passed = []
    for fn in CHECKS:
        fn()
        passed.append(fn.__name__)
    print(json.dumps(passed))
