import pytest

from tests.support.server import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The attachment limit is lowered so the hard-cap test sends a small frame.
    with live_server(tmp_path_factory.mktemp("live"), static=True, extra_env={"CHAT_MAX_ATTACHMENT_BYTES": "100000"}) as srv:
        yield srv


PASSWORD = "live-pass-phrase-42"


@pytest.fixture(scope="module")
def alice(server):
    return server.create_user("alice", PASSWORD)


@pytest.fixture(scope="module")
def bob(server):
    return server.create_user("bob", PASSWORD)
