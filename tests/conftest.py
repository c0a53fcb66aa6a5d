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
