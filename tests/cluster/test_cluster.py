"""Several workers, one room: every message, presence change and typing event reaches everyone."""

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.clients import http_json, recv_json, recv_type, ws_connect

pytestmark = pytest.mark.cluster


async def test_message_from_one_worker_reaches_clients_on_another_and_through_nginx(deployment):
    alice, bob, carol = deployment.user(), deployment.user(), deployment.user()
    slug = deployment.room(alice)
    path = f"/ws/rooms/{slug}/"
    async with ws_connect(deployment.worker_url(0, path), token=alice["token"]) as on_0, ws_connect(
        deployment.worker_url(1, path), token=bob["token"]
    ) as on_1, ws_connect(deployment.nginx_url(path), token=carol["token"], ssl_context=deployment.ssl) as via_nginx:
        for ws in (on_0, on_1, via_nginx):
            assert (await recv_json(ws))["type"] == "hello"
        await on_0.send(json.dumps({"type": "message", "body": "from worker 0", "client_id": "w0"}))
        await on_1.send(json.dumps({"type": "message", "body": "from worker 1", "client_id": "w1"}))
        for ws in (on_0, on_1, via_nginx):
            bodies = {(await recv_type(ws, "message"))["body"] for _ in range(2)}
            assert bodies == {"from worker 0", "from worker 1"}


async def test_presence_and_typing_cross_workers_and_tabs_count_once(deployment):
    alice, bob = deployment.user("alice"), deployment.user("bob")
    slug = deployment.room(alice)
    path = f"/ws/rooms/{slug}/"
    async with ws_connect(deployment.worker_url(1, path), token=bob["token"]) as bob_ws:
        await recv_json(bob_ws)
        async with ws_connect(deployment.worker_url(0, path), token=alice["token"]) as alice_tab1:
            hello = await recv_json(alice_tab1)
            assert {u["username"] for u in hello["online"]} == {alice["username"], bob["username"]}
            joined = await recv_type(bob_ws, "presence")
            assert [u["username"] for u in joined["joined"]] == [alice["username"]]
            async with ws_connect(deployment.worker_url(1, path), token=alice["token"]) as alice_tab2:
                hello = await recv_json(alice_tab2)
                assert len(hello["online"]) == 2  # the second tab is the same user
                await alice_tab1.send(json.dumps({"type": "typing", "active": True}))
                typing = await recv_json(bob_ws)  # no presence frame came for the second tab
                assert typing == {"type": "typing", "user": {"id": alice["id"], "username": alice["username"]}, "active": True}
            await alice_tab1.send(json.dumps({"type": "message", "body": "tab 2 closed", "client_id": "t2"}))
            assert (await recv_json(bob_ws))["type"] == "message"  # still online: no presence frame
        left = await recv_type(bob_ws, "presence")
        assert [u["username"] for u in left["left"]] == [alice["username"]]
        assert [u["username"] for u in left["online"]] == [bob["username"]]


async def test_fifty_concurrent_senders_over_both_workers_get_gap_free_seqs(deployment):
    owner = deployment.user()
    slug = deployment.room(owner)
    path = f"/ws/rooms/{slug}/"
    senders = [deployment.user("sender") for _ in range(50)]
    per_sender = 4

    async def chat(i, user):
        async with ws_connect(deployment.worker_url(i % 2, path), token=user["token"]) as ws:
            await recv_json(ws)
            for n in range(per_sender):
                await ws.send(json.dumps({"type": "message", "body": f"{i}/{n}", "client_id": f"{i}-{n}"}))
            return [(await recv_type(ws, "ack", timeout=60))["seq"] for _ in range(per_sender)]

    acks = await asyncio.gather(*(chat(i, u) for i, u in enumerate(senders)))
    total = 50 * per_sender
    assert sorted(seq for per in acks for seq in per) == list(range(1, total + 1))
    stored = []
    after = 0
    while True:
        status, page = http_json(
            "GET", f"{deployment.cluster.origin}/api/rooms/{slug}/messages/?after={after}&limit=100",
            token=owner["token"], ssl_context=deployment.ssl,
        )
        assert status == 200
        stored += [m["seq"] for m in page["messages"]]
        if not page["has_more"]:
            break
        after = stored[-1]
    assert stored == list(range(1, total + 1))


async def test_killed_worker_clients_recover_everything_and_its_users_leave(deployment):
    cluster = deployment.cluster
    alice, bob, dave = deployment.user("alice"), deployment.user("bob"), deployment.user("dave")
    slug = deployment.room(alice)
    path = f"/ws/rooms/{slug}/"
    received: dict[int, dict] = {}  # alice's view, by seq
    sent = 0

    async def sender(ws, label, count, record=None):
        """Send count messages, each awaited by its ack; record message frames seen on the way."""
        for n in range(count):
            await ws.send(json.dumps({"type": "message", "body": f"{label}-{n}", "client_id": f"{label}-{n}"}))
            while True:
                frame = await recv_json(ws)
                assert frame["type"] != "error", frame
                if frame["type"] == "message" and record is not None:
                    record.setdefault(frame["seq"], frame)
                if frame["type"] == "ack":
                    break

    observer = await ws_connect(deployment.worker_url(1, path), token=bob["token"]).__aenter__()
    try:
        await recv_json(observer)
        dave_ws = await ws_connect(deployment.worker_url(0, path), token=dave["token"]).__aenter__()
        await recv_json(dave_ws)
        assert [u["username"] for u in (await recv_type(observer, "presence"))["joined"]] == [dave["username"]]
        alice_ws = await ws_connect(deployment.worker_url(0, path), token=alice["token"]).__aenter__()
        hello = await recv_json(alice_ws)
        await recv_type(observer, "presence")
        await sender(observer, "before", 5)
        sent += 5
        for _ in range(5):
            frame = await recv_type(alice_ws, "message")
            received[frame["seq"]] = frame

        killed_at = time.monotonic()
        cluster.kill_worker(0)
        with pytest.raises(ConnectionClosed):
            while True:
                await recv_json(alice_ws)
        # Bob keeps chatting on the survivor while alice is away.
        await sender(observer, "during", 5)
        sent += 5

        # The crashed worker's users leave `online`, announced by the survivor.
        remaining = 15 - (time.monotonic() - killed_at)
        while True:
            frame = await recv_type(observer, "presence", timeout=max(remaining, 0.1))
            if frame["left"]:
                break
        assert {u["username"] for u in frame["left"]} == {alice["username"], dave["username"]}
        assert [u["username"] for u in frame["online"]] == [bob["username"]]

        # Alice reconnects through nginx with ?after= and ends up with everything, once.
        highest = max(received)
        async with ws_connect(
            deployment.nginx_url(f"{path}?after={highest}"), token=alice["token"], ssl_context=deployment.ssl
        ) as again:
            hello = await recv_json(again)
            assert hello["truncated"] is False
            for frame in hello["messages"]:
                assert frame["seq"] not in received, "a recovered message was delivered twice"
                received[frame["seq"]] = frame
            await sender(again, "after", 2, record=received)
            sent += 2
            while len(received) < sent:
                frame = await recv_type(again, "message")
                received.setdefault(frame["seq"], frame)
        assert sorted(received) == list(range(1, sent + 1))
        assert [received[s]["body"] for s in range(6, 11)] == [f"during-{n}" for n in range(5)]
    finally:
        await observer.close()
        cluster.start_worker(0)


def test_healthz_through_nginx_reports_database_layer_and_redis(deployment):
    import urllib.request

    with urllib.request.urlopen(f"{deployment.cluster.origin}/healthz", context=deployment.ssl, timeout=10) as response:
        body = json.loads(response.read())
    assert response.status == 200
    assert body == {"status": "ok", "database": "ok", "channel_layer": "ok", "redis": "ok"}


def test_group_commit_on_postgresql_keeps_seqs_client_ids_and_deleted_rooms_straight(deployment):
    from tests.cluster import pg_writer_checks

    out = deployment.cluster.manage("shell", "--no-startup", "-c",
                                    "from tests.cluster.pg_writer_checks import check; check()")
    assert json.loads(out.strip().splitlines()[-1]) == [fn.__name__ for fn in pg_writer_checks.CHECKS]


def test_cluster_manage_runs_manage_py_against_the_running_cluster(deployment):
    """`make cluster-manage ARGS=...` (deploy/cluster.py manage) finds the cluster's database by itself."""
    import os
    import subprocess
    import sys

    from deploy.cluster import REPO

    cluster = deployment.cluster
    made = deployment.user("managed")
    cluster.write_state()
    pidfile = cluster.workdir / "cluster.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # the CLI checks that the cluster's process is alive
    try:
        result = subprocess.run(
            [sys.executable, "deploy/cluster.py", "manage", "--dir", str(cluster.workdir), "shell", "--no-startup",
             "-c", "from django.contrib.auth.models import User; print(sorted(User.objects.values_list('username', flat=True)))"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_"))},
        )
    finally:
        pidfile.unlink()
    assert result.returncode == 0, result.stderr
    assert made["username"] in result.stdout
