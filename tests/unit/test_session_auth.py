"""The handshake's session check (chat.domain.auth.session_user) gives Django's own answer in every case."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client, override_settings
from django.utils import timezone

from chat.domain import auth
from tests.factories import make_user

pytestmark = pytest.mark.django_db


class _Request:
    def __init__(self, key):
        self.session = SessionStore(key)


def _django(key: str):
    user = get_user(_Request(key))
    return user.pk if user.is_authenticated else None


def _ours(key: str):
    found = auth.session_user(session_key=key)
    return found[0].pk if found else None


def _login(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_a_live_session_gives_its_user_and_expiry_with_two_queries(django_assert_num_queries):
    alice = make_user("alice")
    key = _login(alice)
    with django_assert_num_queries(2):
        user, expires = auth.session_user(session_key=key)
    assert user.pk == alice.pk and user.get_username() == "alice"
    assert expires == Session.objects.get(session_key=key).expire_date
    assert _django(key) == alice.pk


@pytest.mark.parametrize("case", ["unknown", "expired", "logged_out", "password_changed", "inactive", "tampered",
                                  "no_user", "other_backend"])
def test_every_refusal_is_djangos_refusal(case):
    alice = make_user("alice")
    key = "x" * 32 if case == "unknown" else _login(alice)
    if case == "expired":
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    elif case == "logged_out":
        Session.objects.filter(session_key=key).delete()
    elif case == "password_changed":
        alice.set_password("a-new-pass-phrase-9")
        alice.save()
    elif case == "inactive":
        type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    elif case == "tampered":
        Session.objects.filter(session_key=key).update(session_data="not-signed-data")
    elif case == "no_user":
        type(alice).objects.filter(pk=alice.pk).delete()
    elif case == "other_backend":
        store = SessionStore(key)
        store["_auth_user_backend"] = "some.unknown.Backend"
        store.save()
    assert _ours(key) is None
    assert _django(key) is None


def test_a_hash_only_a_fallback_key_matches_is_left_to_django():
    alice = make_user("alice")
    with override_settings(SECRET_KEY="the-old-secret-key-" + "x" * 40):
        ours, djangos, later = _login(alice), _login(alice), _login(alice)
    # Django accepts it and moves the session to a new key (cycle_key), so each check gets its own.
    with override_settings(SECRET_KEY_FALLBACKS=["the-old-secret-key-" + "x" * 40]):
        assert _ours(ours) == alice.pk == _django(djangos)
    assert _ours(later) is None  # once the old key is gone, not even Django accepts it


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
def test_another_session_engine_goes_through_django():
    alice = make_user("alice")
    store = __import__("django.contrib.sessions.backends.signed_cookies", fromlist=["SessionStore"]).SessionStore()
    store["_auth_user_id"] = str(alice.pk)
    store["_auth_user_backend"] = auth.MODEL_BACKEND
    store["_auth_user_hash"] = alice.get_session_auth_hash()
    store.save()
    found = auth.session_user(session_key=store.session_key)
    assert found is not None and found[0].pk == alice.pk and found[1] is None


def test_a_sessions_stored_text_is_decoded_once_and_again_when_it_changes():
    alice = make_user("alice")
    key = _login(alice)
    auth.session_data.cache_clear()
    assert _ours(key) == _ours(key) == alice.pk
    assert auth.session_data.cache_info()[:2] == (1, 1)  # hits, misses
    store = SessionStore(key)
    store["theme"] = "dark"
    store.save()  # new stored text: decoded afresh
    assert _ours(key) == alice.pk and auth.session_data.cache_info()[:2] == (1, 2)
    Session.objects.filter(session_key=key).update(session_data=store.encode({"_auth_user_id": "999"}) + "x")
    assert _ours(key) is None and _django(key) is None  # tampered: its signature fails, not a cache hit
    with override_settings(SECRET_KEY="another-secret-key-" + "y" * 40):
        assert auth.session_data.cache_info().currsize == 0
        assert _ours(key) is None  # decoded again under the new key
