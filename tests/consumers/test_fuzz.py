"""Property-based: random and malformed frames never crash the socket, and every reply is valid."""

import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.consumers.conftest import socket_for
from tests.factories import make_room, make_token, make_user
from tests.support.protocol import assert_valid_frame

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_values = json_values | st.text(min_size=0, max_size=5000)
types = st.sampled_from(["message", "typing", "history", "upload", "ping", "edit", "delete", "read", "nope", ""]) \
    | st.text(max_size=10)
frame_objects = st.fixed_dictionaries(
    {"type": types},
    optional={
        "body": field_values,
        "client_id": field_values,
        "active": json_values,
        "before": json_values,
        "limit": json_values,
        "ts": json_values,
        "seq": json_values,
        "id": json_values,
        "name": field_values,
        "content_type": st.sampled_from(["text/plain", "image/png", "application/x-evil"]) | st.text(max_size=20),
        "size": json_values | st.integers(0, 50),
    },
)
frames = st.one_of(
    frame_objects.map(lambda f: ("text", json.dumps(f))),
    json_values.map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
)


@pytest.fixture
def tokens(db):
    make_room("general")
    return make_token(make_user("fuzzer")), make_token(make_user("bystander"))


async def _read_until_pong(sock, marker):
    while True:
        frame = await sock.recv(timeout=10)
        assert_valid_frame(frame)
        if frame == {"type": "pong", "ts": marker}:
            return


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_get_valid_replies_and_harm_nobody(tokens, sequence):
    fuzzer_token, bystander_token = tokens

    async def run():
        fuzzer = socket_for("/ws/rooms/general/", bearer=fuzzer_token)
        bystander = socket_for("/ws/rooms/general/", bearer=bystander_token)
        try:
            for sock in (fuzzer, bystander):
                assert (await sock.connect())[0]
                assert_valid_frame(await sock.recv())
            for kind, payload in sequence:
                if kind == "text":
                    await fuzzer.send(payload)
                else:
                    await fuzzer.send_bytes(payload)
            marker = uuid.uuid4().hex
            await fuzzer.send({"type": "ping", "ts": marker})
            await _read_until_pong(fuzzer, marker)
            await bystander.send({"type": "ping", "ts": marker})
            await _read_until_pong(bystander, marker)
        finally:
            await fuzzer.close()
            await bystander.close()

    async_to_sync(run)()
