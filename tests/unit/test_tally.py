"""RoomTally: a user's exact counts from a room's versioned events, whatever order they come in."""

import json
import random

from chat.realtime.tally import APPLIED, STALE, WAITING, RoomTally

ME, OTHER = 1, 2


def _state(**over):
    state = {"slug": "general", "name": "General", "private": False, "dm": False, "joined": True, "last_seq": 0,
             "last_version": 0, "last_read": 0, "unread": 0, "mentions": 0, "last_message": None,
             "last_activity": "2026-12-01T00:00:00.000Z"}
    state.update(over)
    return state


def _message(seq, version, user=OTHER, deleted=False, body="hi"):
    message = {"type": "message", "id": seq, "seq": seq, "version": version, "user": {"id": user, "username": "u"},
               "body": body, "deleted": deleted, "created": f"2026-12-01T00:00:{seq:02d}.000Z"}
    return message, json.dumps(message)


def test_others_messages_above_the_cursor_count_and_own_do_not():
    tally = RoomTally(user_id=ME, state=_state())
    assert tally.offer(*_message(1, 1)) == APPLIED
    assert tally.offer(*_message(2, 2, user=ME)) == APPLIED
    assert tally.offer(*_message(3, 3)) == APPLIED
    frame = json.loads(tally.frame_text())
    assert (frame["unread"], frame["last_seq"], frame["last_version"]) == (2, 3, 3)
    assert frame["last_message"]["seq"] == 3 and frame["type"] == "room_state" and frame["joined"] is True


def test_a_copy_of_an_applied_event_is_stale_and_counts_once():
    tally = RoomTally(user_id=ME, state=_state())
    tally.offer(*_message(1, 1))
    assert tally.offer(*_message(1, 1)) == STALE
    assert tally.unread == 1


def test_deleting_an_unread_message_takes_it_back_but_not_a_read_one():
    tally = RoomTally(user_id=ME, state=_state(last_seq=2, last_version=2, last_read=1, unread=1))
    assert tally.offer(*_message(1, 3, deleted=True)) == APPLIED  # at or below the cursor: was not counted
    assert tally.unread == 1
    assert tally.offer(*_message(2, 4, deleted=True)) == APPLIED
    assert tally.unread == 0
    assert json.loads(tally.frame_text())["last_message"]["deleted"] is True  # seq 2 is the newest


def test_events_in_any_order_end_at_the_same_exact_state():
    events = [_message(1, 1), _message(2, 2, user=ME), _message(3, 3), _message(1, 4, deleted=True),
              _message(4, 5), _message(3, 6, body="edited")]
    in_order = RoomTally(user_id=ME, state=_state())
    for event in events:
        in_order.offer(*event)
    for seed in range(20):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        tally = RoomTally(user_id=ME, state=_state())
        results = [tally.offer(*event) for event in shuffled]
        assert (tally.unread, tally.last_seq, tally.last_version) == (2, 4, 6), seed
        assert tally.frame_text() == in_order.frame_text()
        assert not tally.pending and not tally.gap
        if results[0] == WAITING:
            assert WAITING in results


def test_a_missing_event_leaves_a_gap_until_a_snapshot_fills_it():
    tally = RoomTally(user_id=ME, state=_state())
    tally.offer(*_message(1, 1))
    assert tally.offer(*_message(3, 3)) == WAITING  # version 2 was lost
    assert tally.gap and tally.unread == 1
    tally.frozen = True  # a refresh is under way: what comes now waits for it
    assert tally.offer(*_message(4, 4)) == WAITING
    assert not tally.gap
    assert tally.adopt(_state(last_seq=3, last_version=3, unread=3))  # the database: 1, 2 and 3
    assert (tally.unread, tally.last_seq, tally.last_version, tally.pending) == (4, 4, 4, {})


def test_a_snapshot_behind_the_applied_events_is_refused_and_one_ahead_is_taken():
    tally = RoomTally(user_id=ME, state=_state())
    tally.offer(*_message(1, 1))
    tally.offer(*_message(2, 2))
    assert not tally.adopt(_state(last_seq=1, last_version=1, last_read=1, unread=0))  # misses 2: refresh instead
    assert tally.unread == 2
    assert tally.adopt(_state(last_seq=3, last_version=3, last_read=2, unread=1))
    assert tally.offer(*_message(3, 3)) == STALE
    assert (tally.unread, tally.last_read) == (1, 2)
