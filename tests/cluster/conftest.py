"""Two Daphne workers behind nginx on real Redis and PostgreSQL, started for this tier."""

import itertools
import ssl
from pathlib import Path

import pytest

from deploy.cluster import Cluster
from tests.support.clients import create_user, create_users, http_json

REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


class Deployment:
    """Addresses of one running cluster, and helpers to make users and rooms on it."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.ssl = ssl.create_default_context(cafile=str(cluster.cert))

    def worker_url(self, i: int, path: str) -> str:
        return f"ws://127.0.0.1:{self.cluster.worker_ports[i]}{path}"

    def nginx_url(self, path: str) -> str:
        return f"wss://localhost:{self.cluster.https_port}{path}"

    def user(self, prefix: str = "user") -> dict:
        return create_user(self.cluster.manage, f"{prefix}{next(_names)}", "cluster-pass-phrase-1")

    def users(self, prefix: str, count: int) -> list[dict]:
        """count users at once: a manage.py start-up each costs seconds on a loaded 2-core machine."""
        return create_users(self.cluster.manage, [f"{prefix}{next(_names)}" for _ in range(count)],
                            "cluster-pass-phrase-1")

    def room(self, owner: dict) -> str:
        slug = f"room-{next(_names)}"
        status, body = http_json(
            "POST", f"{self.cluster.origin}/api/rooms/", token=owner["token"], body={"name": slug, "slug": slug},
            ssl_context=self.ssl,
        )
        assert status == 201, body
        return slug


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), workers=2)
    try:
        cluster.start()
        yield Deployment(cluster)
    finally:
        cluster.stop()
