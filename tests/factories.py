"""Small helpers that make users, rooms and tokens for tests."""

import itertools

from django.contrib.auth import get_user_model

from chat.domain import services
from chat.models import Membership, Room

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(username: str | None = None, **extra):
    username = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


def make_room(slug: str | None = None, *, private: bool = False, members=(), created_by=None) -> Room:
    slug = slug or f"room-{next(_counter)}"
    room = Room.objects.create(slug=slug, name=slug.title(), private=private, created_by=created_by)
    for user in members:
        Membership.objects.create(room=room, user=user)
    return room


def make_token(user) -> str:
    _token, raw = services.token_create(user=user, name="test")
    return raw
