"""Fixtures shared by every tier."""

import pytest
from django.test import override_settings


@pytest.fixture(autouse=True, scope="session")
def _test_storage(tmp_path_factory):
    """Serve static files from the app folders (no collectstatic) and keep uploads in a temp folder."""
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path_factory.mktemp("media"))):
        yield


@pytest.fixture(autouse=True)
def _no_members_cached():
    """Each test starts with no room members cached for mentions (its rooms reuse slugs, not ids)."""
    from chat.domain import mentions

    mentions._members.clear()
    yield
    mentions._members.clear()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis for the whole session; the tier fails (not skips) if it cannot start."""
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
