"""Several workers, one room: every message, presence change and typing event reaches everyone."""

import asyncio
import contextlib
import json
import random
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.clients import http_json, login_through_page, recv_json, recv_type, room_messages_all, ws_connect

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
    senders = deployment.users("sender", 50)
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
    stored = [m["seq"] for m in room_messages_all(deployment.cluster.origin, slug, token=owner["token"],
                                                  ssl_context=deployment.ssl)]
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


# -- protocol section 8 across workers ----------------------------------------------


def _worker_request(deployment, i: int, method: str, path: str, *, headers=None, body: bytes | None = None):
    """An HTTP request straight to worker i, as nginx would forward it (TLS ended, X-Forwarded-Proto set)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", deployment.cluster.worker_ports[i], timeout=10)
    conn.request(method, path, body=body, headers={
        "Host": f"localhost:{deployment.cluster.https_port}", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "127.0.0.1", **(headers or {})})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def _login_on_worker(deployment, i: int, username: str) -> tuple[str, str]:
    """Log in through worker i's login page; return (sessionid, csrftoken)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", deployment.cluster.worker_ports[i], timeout=10)
    return login_through_page(conn, deployment.cluster.origin, username, "cluster-pass-phrase-1", headers={
        "Host": f"localhost:{deployment.cluster.https_port}", "X-Forwarded-Proto": "https"})


@contextlib.asynccontextmanager
async def _on_both_workers(deployment, path: str, token: str):
    """One socket per worker to path, each past its hello."""
    async with ws_connect(deployment.worker_url(0, path), token=token) as on_0, \
            ws_connect(deployment.worker_url(1, path), token=token) as on_1:
        for ws in (on_0, on_1):
            await recv_json(ws)
        yield on_0, on_1


async def _closed_within(ws, seconds: float) -> tuple[int, float]:
    """Wait for the close; return its code and how long it took."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    return ws.close_code, time.monotonic() - started


def _stored_with(deployment, owner: dict, slug: str, client_id: str) -> bool:
    status, page = http_json("GET", f"{deployment.cluster.origin}/api/rooms/{slug}/messages/?limit=100",
                             token=owner["token"], ssl_context=deployment.ssl)
    assert status == 200
    return any(m["client_id"] == client_id for m in page["messages"])


async def test_logout_on_one_worker_closes_the_session_socket_on_the_other_within_2_s(deployment):
    alice = deployment.user("alice")
    slug = deployment.room(alice)
    session, csrf = _login_on_worker(deployment, 0, alice["username"])
    cookie = f"sessionid={session}; csrftoken={csrf}"
    async with ws_connect(deployment.worker_url(1, f"/ws/rooms/{slug}/"),
                          additional_headers={"Cookie": cookie}) as ws:
        assert (await recv_json(ws))["type"] == "hello"
        logout = _worker_request(deployment, 0, "POST", "/accounts/logout/", body=f"csrfmiddlewaretoken={csrf}".encode(),
                                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded",
                                          "Origin": deployment.cluster.origin,
                                          "Referer": deployment.cluster.origin + "/"})
        assert logout.status == 302
        code, took = await _closed_within(ws, 2)
        assert code == 4401, code
        with pytest.raises(ConnectionClosed):
            await ws.send(json.dumps({"type": "message", "body": "after logout", "client_id": "late-1"}))
    assert not _stored_with(deployment, alice, slug, "late-1")
    print(f"logout on worker 0 -> 4401 on worker 1 in {took:.3f} s")


@pytest.mark.parametrize("ending", ["token_revoked", "user_deactivated"])
async def test_a_revoked_token_or_deactivated_user_closes_sockets_on_every_worker(deployment, ending):
    alice = deployment.user("alice")
    slug = deployment.room(alice)
    async with _on_both_workers(deployment, f"/ws/rooms/{slug}/", alice["token"]) as (on_0, on_1):
        # From a third process (manage.py), as the admin or a script would: the announcement crosses Redis.
        code = {
            "token_revoked": "from chat.actions import authority; from chat.models import ApiToken;"
                             f" authority.tokens_revoke(token_ids=list(ApiToken.objects.filter(user__username={alice['username']!r}).values_list('pk', flat=True)))",
            "user_deactivated": "from django.contrib.auth.models import User;"
                                f" u = User.objects.get(username={alice['username']!r}); u.is_active = False; u.save()",
        }[ending]
        deployment.cluster.manage("shell", "--no-startup", "-c", code)
        for ws in (on_0, on_1):
            closed, took = await _closed_within(ws, 2)
            assert closed == 4401
    print(f"{ending} -> 4401 on both workers, the later in {took:.3f} s")


async def test_removal_from_a_private_room_over_the_api_closes_that_socket_4403_on_the_other_worker(deployment):
    owner, alice = deployment.user("owner"), deployment.user("alice")
    slug = f"room-private-{alice['id']}"
    status, _ = http_json("POST", f"{deployment.cluster.origin}/api/rooms/", token=owner["token"],
                          body={"name": slug, "slug": slug, "private": True}, ssl_context=deployment.ssl)
    assert status == 201
    status, _ = http_json("POST", f"{deployment.cluster.origin}/api/rooms/{slug}/members/", token=owner["token"],
                          body={"username": alice["username"]}, ssl_context=deployment.ssl)
    assert status == 201
    public = deployment.room(owner)
    async with ws_connect(deployment.worker_url(1, f"/ws/rooms/{slug}/"), token=alice["token"]) as private_ws, \
            ws_connect(deployment.worker_url(1, f"/ws/rooms/{public}/"), token=alice["token"]) as public_ws:
        await recv_json(private_ws)
        await recv_json(public_ws)
        removed = _worker_request(deployment, 0, "DELETE", f"/api/rooms/{slug}/members/{alice['username']}/",
                                  headers={"Authorization": f"Bearer {owner['token']}"})
        assert removed.status == 200
        code, took = await _closed_within(private_ws, 2)
        assert code == 4403
        await public_ws.send(json.dumps({"type": "ping", "ts": "still here"}))
        assert (await recv_type(public_ws, "pong"))["ts"] == "still here"
    print(f"removal on worker 0 -> 4403 on worker 1 in {took:.3f} s")


async def test_a_deleted_room_closes_its_sockets_4404_on_every_worker(deployment):
    owner = deployment.user("owner")
    slug = deployment.room(owner)
    async with _on_both_workers(deployment, f"/ws/rooms/{slug}/", owner["token"]) as (on_0, on_1):
        deployment.cluster.manage("shell", "--no-startup", "-c",
                                  f"from chat.models import Room; Room.objects.filter(slug={slug!r}).delete()")
        for ws in (on_0, on_1):
            assert (await _closed_within(ws, 2))[0] == 4404


# -- protocol section 9: a deploy stops a worker -------------------------------------


async def test_sigterm_under_load_loses_no_acknowledged_message_and_clients_come_back_within_2_s(deployment):
    owner = deployment.user("owner")
    slug = deployment.room(owner)
    senders = deployment.users("sender", 8)
    acked: dict[str, int] = {}
    closes: list[int | None] = []
    closed_at: dict[int, float] = {}
    back_after: dict[int, float] = {}
    stop = asyncio.Event()

    async def chat(user):
        n = 0
        worker = 0  # every sender starts on the worker that stops
        while not stop.is_set():
            async with ws_connect(deployment.worker_url(worker, f"/ws/rooms/{slug}/"), token=user["token"]) as ws:
                await recv_json(ws)
                if user["id"] in closed_at:
                    back_after[user["id"]] = time.monotonic() - closed_at[user["id"]]
                try:
                    while not stop.is_set():
                        await ws.send(json.dumps({"type": "message", "body": f"m{n}", "client_id": f"{user['id']}-{n}"}))
                        n += 1
                        try:
                            async with asyncio.timeout(0.2):  # a steady sender, under the rate limit
                                while True:
                                    frame = json.loads(await ws.recv())
                                    if frame["type"] == "ack":
                                        acked[frame["client_id"]] = frame["seq"]
                        except TimeoutError:
                            pass
                except ConnectionClosed:
                    pass
            if not stop.is_set():
                closes.append(ws.close_code)
                closed_at[user["id"]] = time.monotonic()
                worker = 1  # the restarting worker is gone: a proxy would pick the other one
                await asyncio.sleep(random.random() * 1.0)  # the clients' restart jitter

    tasks = [asyncio.create_task(chat(u)) for u in senders]
    while len(acked) < 40:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(deployment.cluster.stop_worker, 0)
    deadline = time.monotonic() + 15
    while len(back_after) < len(senders) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    deployment.cluster.start_worker(0)
    assert closes == [1012] * len(senders), closes
    assert len(back_after) == len(senders) and max(back_after.values()) < 2, back_after
    stored = {m["client_id"]: m["seq"] for m in room_messages_all(
        deployment.cluster.origin, slug, token=owner["token"], ssl_context=deployment.ssl)}
    lost = {cid: seq for cid, seq in acked.items() if stored.get(cid) != seq}
    assert not lost, lost
    print(f"SIGTERM: {len(closes)} x 1012, all back within {max(back_after.values()):.3f} s, {len(acked)} acks, none lost")


async def test_one_workers_metrics_count_the_messages_every_worker_stored(deployment):
    """Multi-process mode: the workers share CHAT_METRICS_DIR, so a scrape of either answers for both."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def stored(i: int) -> float:
        url = f"http://127.0.0.1:{deployment.cluster.worker_ports[i]}/metrics"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"}),
                                    timeout=10) as response:
            text = response.read().decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "chat_messages_stored_total")

    alice = deployment.user("alice")
    slug = deployment.room(alice)
    before = stored(0)
    async with ws_connect(deployment.worker_url(1, f"/ws/rooms/{slug}/"), token=alice["token"]) as ws:
        await recv_json(ws)
        for n in range(3):
            await ws.send(json.dumps({"type": "message", "body": f"counted {n}", "client_id": f"metric-{n}"}))
            await recv_type(ws, "ack")
    assert stored(0) == before + 3 == stored(1)


# -- protocol section 11 across workers ---------------------------------------------


async def _state_of(ws, slug: str, **expected) -> dict:
    """Receive room_state frames until one of this room has every expected field."""
    while True:
        frame = await recv_type(ws, "room_state")
        if frame["slug"] == slug and all(frame.get(k) == v for k, v in expected.items()):
            return frame


async def test_the_user_socket_counts_exactly_across_workers_and_a_read_reaches_every_tab(deployment):
    alice, bob, carol = deployment.user("alice"), deployment.user("bob"), deployment.user("carol")
    slug = deployment.room(bob)
    path = f"/ws/rooms/{slug}/"
    async with ws_connect(deployment.worker_url(0, path), token=alice["token"]) as alice_room, \
            ws_connect(deployment.worker_url(1, path), token=alice["token"]) as alice_tab, \
            ws_connect(deployment.worker_url(0, path), token=bob["token"]) as bob_ws, \
            ws_connect(deployment.worker_url(1, path), token=carol["token"]) as carol_ws:
        for ws in (alice_room, alice_tab, bob_ws, carol_ws):
            assert (await recv_json(ws))["type"] == "hello"
        async with ws_connect(deployment.worker_url(1, "/ws/user/"), token=alice["token"]) as watcher, \
                ws_connect(deployment.nginx_url("/ws/user/"), token=alice["token"], ssl_context=deployment.ssl) as other:
            for ws in (watcher, other):
                hello = await recv_json(ws)
                assert hello["type"] == "user_hello" and [r["slug"] for r in hello["rooms"]] == [slug]
            # Two workers store at once: their broadcasts interleave, and the counts stay exact.
            per_sender = 10  # the rate limit's burst

            async def send_all(ws, tag):
                for i in range(per_sender):
                    await ws.send(json.dumps({"type": "message", "body": f"{tag} {i}", "client_id": f"{tag}{i}"}))
                for _ in range(per_sender):
                    await recv_type(ws, "ack")

            await asyncio.gather(send_all(bob_ws, "b"), send_all(carol_ws, "c"))
            total = 2 * per_sender
            for ws in (watcher, other):
                counted = await _state_of(ws, slug, last_seq=total)
                assert (counted["unread"], counted["last_version"]) == (total, total)
            await alice_room.send(json.dumps({"type": "read", "seq": total - 5}))
            for ws in (watcher, other, alice_tab):  # the tab and the user socket on the other worker
                moved = await _state_of(ws, slug, last_read=total - 5)
                assert moved["unread"] == 5
        async with ws_connect(deployment.worker_url(0, "/ws/user/"), token=alice["token"]) as fresh:
            again = await recv_json(fresh)
            assert [(r["unread"], r["last_read"], r["last_seq"]) for r in again["rooms"]] == [(5, total - 5, total)]


# -- protocol section 12 on PostgreSQL and two workers ------------------------------


def test_search_on_postgresql_is_full_text_with_its_index_and_keeps_private_rooms_private(deployment):
    from tests.cluster import pg_search_checks

    out = deployment.cluster.manage("shell", "--no-startup", "-c",
                                    "from tests.cluster.pg_search_checks import check; check()")
    assert json.loads(out.strip().splitlines()[-1]) == [fn.__name__ for fn in pg_search_checks.CHECKS]


def test_two_users_starting_a_dm_on_two_workers_at_once_get_one_room(deployment):
    import concurrent.futures

    alice, bob = deployment.user("alice"), deployment.user("bob")

    def open_dm(i: int):
        me, other = (alice, bob) if i % 2 else (bob, alice)
        response = _worker_request(deployment, i % 2, "POST", "/api/dms/",
                                   headers={"Authorization": f"Bearer {me['token']}",
                                            "Content-Type": "application/json"},
                                   body=json.dumps({"username": other["username"]}).encode())
        return response.status, json.loads(response.body)["slug"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(open_dm, range(8)))
    assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
    assert len({slug for _, slug in answers}) == 1
