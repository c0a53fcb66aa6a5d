"""GET /metrics: the counters move with the traffic, and the endpoint is not public."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(**extra) -> dict[tuple[str, tuple], float]:
    response = Client(**extra).get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values, name: str, **labels) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_message_moves_the_counters(open_socket):
    token = await sync_to_async(lambda: (make_room("general"), make_token(make_user("alice")))[1])()
    before = await sync_to_async(scrape)()
    alice, _ = await open_socket("/ws/rooms/general/", bearer=token)
    await alice.send({"type": "message", "body": "counted", "client_id": "m1"})
    await alice.recv_type("ack")
    await alice.send({"type": "message", "body": "", "client_id": "m2"})
    assert (await alice.recv())["code"] == "bad_request"
    during = await sync_to_async(scrape)()
    assert value(during, "chat_messages_stored_total") == value(before, "chat_messages_stored_total") + 1
    assert value(during, "chat_frames_in_total", type="message") == value(before, "chat_frames_in_total", type="message") + 2
    assert value(during, "chat_handshakes_total", outcome="hello") == value(before, "chat_handshakes_total", outcome="hello") + 1
    assert value(during, "chat_sockets_open", kind="room") == value(before, "chat_sockets_open", kind="room") + 1
    assert value(during, "chat_errors_total", code="bad_request") == value(before, "chat_errors_total", code="bad_request") + 1
    assert value(during, "chat_frames_out_total", type="ack") > value(before, "chat_frames_out_total", type="ack")
    assert value(during, "chat_store_batch_size_count") > value(before, "chat_store_batch_size_count")
    assert value(during, "chat_delivery_seconds_count") > value(before, "chat_delivery_seconds_count")
    await alice.close()
    after = await sync_to_async(scrape)()
    assert value(after, "chat_sockets_open", kind="room") == value(before, "chat_sockets_open", kind="room")


async def test_a_refused_handshake_is_counted_by_its_close_code(open_socket):
    from tests.consumers.conftest import socket_for

    before = await sync_to_async(scrape)()
    sock = socket_for("/ws/rooms/general/")
    await sock.connect()
    assert await sock.closed_with() == 4401
    after = await sync_to_async(scrape)()
    assert value(after, "chat_handshakes_total", outcome="4401") == value(before, "chat_handshakes_total", outcome="4401") + 1


def test_metrics_are_not_public(transactional_db):
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    with override_settings(CHAT_METRICS_TOKEN="scrape-secret"):
        assert Client(REMOTE_ADDR="203.0.113.9").get(
            "/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
        assert Client(REMOTE_ADDR="203.0.113.9").get(
            "/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200


def test_the_grafana_dashboard_charts_only_metrics_the_chat_exports():
    import json
    import re
    from pathlib import Path

    from prometheus_client import REGISTRY

    import chat.metrics  # noqa: F401 - registers them

    exported = {sample_name for family in REGISTRY.collect() for sample_name in
                [family.name, family.name + "_total", family.name + "_bucket", family.name + "_count"]}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/chat.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bchat_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported
