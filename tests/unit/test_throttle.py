"""Sign-in and sign-up attempts are throttled per client address and per username (chat/throttle.py)."""

import itertools

import pytest
from django.test import Client, override_settings

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
_addresses = (f"192.0.2.{n}" for n in itertools.count(1))  # a fresh address per test: buckets outlive tests


def attempt(client, path, address, **form):
    return client.post(path, form, REMOTE_ADDR=address)


@override_settings(CHAT_LOGIN_BURST=3, CHAT_LOGIN_PER_SECOND=0.001)
def test_one_address_gets_a_burst_of_tries_then_429_even_with_the_right_password():
    user, address, client = make_user(), next(_addresses), Client()
    for n in range(3):
        response = attempt(client, "/accounts/login/", address, username=f"{user.username}-{n}", password="wrong")
        assert response.status_code == 200 and b"correct username and password" in response.content
    refused = attempt(client, "/accounts/login/", address, username=user.username, password=PASSWORD)
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert b"Too many sign-in attempts" in refused.content and "_auth_user_id" not in client.session
    # Another machine is not held up by this one.
    assert attempt(Client(), "/accounts/login/", next(_addresses), username=user.username,
                   password=PASSWORD).status_code == 302


@override_settings(CHAT_LOGIN_BURST=2, CHAT_LOGIN_PER_SECOND=0.001)
def test_one_username_tried_from_many_addresses_is_throttled_too():
    user = make_user()
    for _ in range(2):
        assert attempt(Client(), "/accounts/login/", next(_addresses), username=user.username,
                       password="wrong").status_code == 200
    assert attempt(Client(), "/accounts/login/", next(_addresses), username=user.username,
                   password=PASSWORD).status_code == 429


@override_settings(CHAT_LOGIN_BURST=1, CHAT_LOGIN_PER_SECOND=0.001)
def test_sign_up_and_the_admin_login_share_the_address_bucket():
    address = next(_addresses)
    form = {"username": "newcomer", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    assert attempt(Client(), "/accounts/signup/", address, **form).status_code == 302
    assert attempt(Client(), "/admin/login/", address, username="newcomer", password="x").status_code == 429
    assert attempt(Client(), "/accounts/signup/", address, **{**form, "username": "second"}).status_code == 429
    assert Client().get("/accounts/login/", REMOTE_ADDR=address).status_code == 200  # pages still load


@override_settings(CHAT_LOGIN_BURST=1, CHAT_LOGIN_PER_SECOND=0.001)
def test_the_token_api_with_a_password_is_a_sign_in_try_too():
    user, address = make_user(), next(_addresses)
    body = {"username": user.username, "password": "wrong"}
    first = Client().post("/api/token/", body, content_type="application/json", REMOTE_ADDR=address)
    assert first.status_code == 401
    second = Client().post("/api/token/", {**body, "password": PASSWORD}, content_type="application/json",
                           REMOTE_ADDR=address)
    assert second.status_code == 429 and second.json()["error"] == "rate_limited"
