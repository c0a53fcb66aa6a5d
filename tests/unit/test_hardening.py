"""Web hardening: CSP, cookies, HTTPS redirects, and a clean `check --deploy` in production."""

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.factories import make_user

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def test_pages_forbid_inline_script_and_framing():
    response = Client().get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_admin_keeps_scripts_strict():
    client = Client()
    client.force_login(make_user(is_staff=True, is_superuser=True))
    csp = client.get("/admin/")["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self' 'unsafe-inline'" in csp


def test_session_and_csrf_cookies_are_secure_and_samesite():
    client = Client()
    client.get("/accounts/login/")
    csrf = client.cookies["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    client.post("/accounts/login/", {"username": make_user("x").username, "password": "correct-horse-battery-staple"})
    session = client.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


def test_every_form_carries_a_csrf_token():
    client = Client()
    assert b"csrfmiddlewaretoken" in client.get("/accounts/login/").content
    assert b"csrfmiddlewaretoken" in client.get("/accounts/signup/").content
    client.force_login(make_user())
    assert b"csrfmiddlewaretoken" in client.get("/").content


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_SSL_HOST="localhost:8443")
def test_plain_http_pages_redirect_to_https_but_healthz_answers():
    response = Client().get("/accounts/login/")
    assert response.status_code == 301 and response["Location"] == "https://localhost:8443/accounts/login/"
    assert Client().get("/healthz").status_code == 200


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "CHAT_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _settings_secret(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Load production settings in a fresh interpreter and print a digest of SECRET_KEY."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SECRET_KEY")}
    code = "import hashlib; from django.conf import settings; print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest())"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, capture_output=True, text=True,
        timeout=60,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "DJANGO_ENV": "production",
             "CHAT_VAR_DIR": str(tmp_path), **env},
    )


def test_production_without_a_secret_fails_loudly(tmp_path):
    result = _settings_secret(tmp_path)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE must be set" in result.stderr


def test_secret_key_file_is_read_and_the_variable_wins_over_it(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("key-from-the-file\n")
    from_file = _settings_secret(tmp_path, DJANGO_SECRET_KEY_FILE=str(key_file))
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == hashlib.sha256(b"key-from-the-file").hexdigest()
    both = _settings_secret(tmp_path, DJANGO_SECRET_KEY_FILE=str(key_file), DJANGO_SECRET_KEY="key-from-the-variable")
    assert both.stdout.strip() == hashlib.sha256(b"key-from-the-variable").hexdigest()


def test_an_empty_or_missing_secret_key_file_fails_loudly(tmp_path):
    (tmp_path / "empty").write_text("")
    for path, says in ((tmp_path / "empty", "is empty"), (tmp_path / "missing", "cannot be read")):
        result = _settings_secret(tmp_path, DJANGO_SECRET_KEY_FILE=str(path))
        assert result.returncode != 0 and says in result.stderr
