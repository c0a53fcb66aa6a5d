"""Fixtures shared by every tier."""

import pytest
from django.test import override_settings


@pytest.fixture(autouse=True, scope="session")
def _plain_static_storage():
    """Serve static files from the app folders: the unit and consumer tiers run no collectstatic."""
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis for the whole session; the tier fails (not skips) if it cannot start."""
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
