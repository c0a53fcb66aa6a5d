"""Selectors: access rules and message pages."""

import pytest

from chat.domain import selectors, services
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db


def _fill(room, user, count):
    for n in range(count):
        services.message_create(room=room, user=user, body=f"m{n + 1}", client_id=None)


def test_private_room_is_for_members_only():
    member, outsider = make_user(), make_user()
    room = make_room(private=True, members=[member])
    public = make_room()
    assert selectors.room_user_can_access(room=room, user=member)
    assert not selectors.room_user_can_access(room=room, user=outsider)
    assert selectors.room_user_can_access(room=public, user=outsider)
    visible = {r.slug for r in selectors.room_list_visible(user=outsider)}
    assert room.slug not in visible and public.slug in visible
    assert room.slug in {r.slug for r in selectors.room_list_visible(user=member)}


def test_pages_are_oldest_first_with_has_more():
    user = make_user()
    room = make_room()
    _fill(room, user, 7)
    latest, more = selectors.message_list_latest(room=room, limit=5)
    assert [m["seq"] for m in latest] == [3, 4, 5, 6, 7] and more
    before, more = selectors.message_list_before(room=room, before=3, limit=5)
    assert [m["seq"] for m in before] == [1, 2] and not more
    after, more = selectors.message_list_after(room=room, after=2, limit=3)
    assert [m["seq"] for m in after] == [3, 4, 5] and more
    after, more = selectors.message_list_after(room=room, after=4, limit=10)
    assert [m["seq"] for m in after] == [5, 6, 7] and not more
    window, more = selectors.message_list_after(room=room, after=1, before=4, limit=10)
    assert [m["seq"] for m in window] == [2, 3] and not more
