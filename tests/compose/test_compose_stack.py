"""The containerised stack as a user meets it: `docker compose up --scale web=3`, then chat through nginx.

Every check goes through the ports the stack publishes on 127.0.0.1. The tests share one
stack and run in file order: the later ones kill, scale, and take the stack down and up.
"""

import asyncio
import hashlib
import itertools
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from deploy.standin_images import debian_archive, host_sources
from tests.compose.conftest import LONG_RUNNING
from tests.support.clients import create_user, http_json, https_login, recv_json, recv_type, ws_connect
from tests.support.docker_engine import network_state

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]
PASSWORD = "compose-pass-phrase-1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
_names = itertools.count(1)
# Users and a room made by the first tests, checked again after `down` and `up`.
KEPT: dict = {}


def user(stack, prefix: str) -> dict:
    return create_user(stack.manage, f"{prefix}{next(_names)}", PASSWORD)


def room(stack, owner: dict) -> str:
    slug = f"room-{next(_names)}"
    status, body = http_json("POST", f"{stack.origin}/api/rooms/", token=owner["token"],
                             body={"name": slug, "slug": slug}, ssl_context=stack.ssl)
    assert status == 201, body
    return slug


def wss(stack, path: str, *, agent: str, token: str | None = None, cookie: str | None = None):
    headers = {"Cookie": f"sessionid={cookie}", "Origin": stack.origin} if cookie else {}
    return ws_connect(f"wss://localhost:{stack.https_port}{path}", token=token, ssl_context=stack.ssl,
                      additional_headers=headers, user_agent_header=agent)


async def send_until_acked(ws, body: str, client_id: str, attempts: int = 20) -> dict:
    """Send a message; resend with the same client_id while the server answers `unavailable` (a backing service restarting)."""
    for _ in range(attempts):
        await ws.send(json.dumps({"type": "message", "body": body, "client_id": client_id}))
        while True:
            frame = await recv_json(ws, timeout=30)
            if frame["type"] == "ack" and frame["client_id"] == client_id:
                return frame
            if frame["type"] == "error" and frame.get("client_id") == client_id:
                assert frame["code"] == "unavailable", frame
                break
        await asyncio.sleep(0.5)
    raise AssertionError(f"{client_id} never acknowledged")


def connections_by_replica(stack) -> dict[str, int]:
    return {c: stack.established_to(c) for c in stack.containers("web")}


def replica_that_gained_a_connection(stack, before: dict[str, int]) -> str:
    """The one web container holding one more connection from nginx than before (others may be closing)."""
    deadline = time.monotonic() + 10
    while True:
        gained = [c for c, n in connections_by_replica(stack).items() if n > before.get(c, 0)]
        if len(gained) == 1:
            return gained[0]
        assert time.monotonic() < deadline, f"expected one replica to gain a connection, found {gained}"
        time.sleep(0.2)


def test_stack_starts_with_no_preparation_and_every_service_is_healthy(stack):
    assert "DJANGO_SECRET_KEY" not in stack.env
    assert len(stack.containers("web")) == 3
    for job in ("secret", "migrate", "cert"):
        state = stack.inspect(stack.containers(job)[0])["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), (job, state)
    # The generated key is in the volume; every Django container reads the same file.
    digests = {stack.engine.docker("exec", c, "sha256sum", "/srv/secrets/secret_key").stdout.split()[0]
               for c in stack.containers("web")}
    assert len(digests) == 1
    with urllib.request.urlopen(f"{stack.origin}/healthz", context=stack.ssl, timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok", "database": "ok", "channel_layer": "ok", "redis": "ok"}
    # Plain HTTP redirects to the published HTTPS port.
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"http://localhost:{stack.http_port}/", timeout=10)
    assert redirect.value.code == 301
    assert redirect.value.headers["Location"] == f"https://localhost:{stack.https_port}/"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


async def test_two_users_on_different_replicas_chat_over_wss(stack):
    alice, bob = user(stack, "alice"), user(stack, "bob")
    slug = room(stack, alice)
    path = f"/ws/rooms/{slug}/"
    # Alice logs in through the page (one replica) and her socket uses the session (maybe another).
    cookie = https_login(stack.origin, alice["username"], PASSWORD, ssl_context=stack.ssl)
    async with wss(stack, path, agent="tier-chat-alice", cookie=cookie) as alice_ws:
        hello = await recv_json(alice_ws)
        assert hello["type"] == "hello" and hello["user"]["username"] == alice["username"]
        async with wss(stack, path, agent="tier-chat-bob", token=bob["token"]) as bob_ws:
            hello = await recv_json(bob_ws)
            assert {u["username"] for u in hello["online"]} == {alice["username"], bob["username"]}
            joined = await recv_type(alice_ws, "presence")
            assert [u["username"] for u in joined["joined"]] == [bob["username"]]
            await bob_ws.send(json.dumps({"type": "typing", "active": True}))
            typing = await recv_type(alice_ws, "typing")
            assert typing["user"]["username"] == bob["username"] and typing["active"] is True
            await bob_ws.send(json.dumps({"type": "message", "body": "hello across replicas", "client_id": "b1"}))
            # The sender gets the ack and its own broadcast, in either order.
            own = {frame["type"]: frame for frame in [await recv_json(bob_ws), await recv_json(bob_ws)]}
            assert set(own) == {"ack", "message"}, own
            message = await recv_type(alice_ws, "message")
            assert message == own["message"]
            assert (message["body"], message["seq"]) == ("hello across replicas", own["ack"]["seq"])
            await alice_ws.send(json.dumps({"type": "message", "body": "and back", "client_id": "a1"}))
            assert (await recv_type(bob_ws, "message"))["body"] == "and back"
        left = await recv_type(alice_ws, "presence")
        assert [u["username"] for u in left["left"]] == [bob["username"]]
    [on_alice] = stack.nginx_upstreams("tier-chat-alice")
    [on_bob] = stack.nginx_upstreams("tier-chat-bob")
    assert on_alice != on_bob
    KEPT.update(alice=alice, bob=bob, slug=slug, cookie=cookie)


async def test_an_upload_on_one_replica_downloads_from_another(stack):
    alice = KEPT["alice"]
    async with wss(stack, f"/ws/rooms/{KEPT['slug']}/", agent="tier-upload", token=alice["token"]) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "upload", "name": "pixels.png", "content_type": "image/png",
                                  "size": len(PNG), "client_id": "up1"}))
        await ws.send(PNG)
        attachment = (await recv_type(ws, "message"))["attachment"]
        assert attachment["size"] == len(PNG)
        # The socket stays open on its replica, so least_conn sends the download elsewhere.
        request = urllib.request.Request(stack.origin + attachment["url"], headers={
            "Authorization": f"Bearer {alice['token']}", "User-Agent": "tier-download"})
        with urllib.request.urlopen(request, context=stack.ssl, timeout=10) as response:
            assert response.read() == PNG
    [uploaded_on] = stack.nginx_upstreams("tier-upload")
    [downloaded_from] = stack.nginx_upstreams("tier-download")
    assert uploaded_on != downloaded_from


def test_metrics_of_every_replica_on_the_hosts_metrics_port_and_not_on_the_public_one(stack):
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{stack.env['CHAT_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    # The chat so far (two users, an upload) went through several replicas; one scrape counts it all.
    assert samples[("chat_messages_stored_total", ())] >= 3
    assert samples[("chat_handshakes_total", (("outcome", "hello"),))] >= 3
    with pytest.raises(urllib.error.HTTPError) as public:
        urllib.request.urlopen(f"{stack.origin}/metrics", context=stack.ssl, timeout=10)
    assert public.value.code == 403


async def test_after_recovery_when_a_web_container_is_killed_and_it_restarts_by_itself(stack):
    alice, bob, slug = KEPT["alice"], KEPT["bob"], KEPT["slug"]
    path = f"/ws/rooms/{slug}/"
    before = connections_by_replica(stack)
    async with wss(stack, path, agent="tier-victim", token=alice["token"]) as victim:
        seen = (await recv_json(victim))["last_seq"]
        victim_container = replica_that_gained_a_connection(stack, before)
        async with wss(stack, path, agent="tier-survivor", token=bob["token"]) as survivor:
            await recv_json(survivor)
            restarts = stack.kill_main_process(victim_container)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(15):
                    while True:  # frames sent before the kill (the survivor's presence) come first
                        await victim.recv()
            acks = [await send_until_acked(survivor, f"while away {n}", f"away{n}") for n in range(3)]
    async with wss(stack, f"{path}?after={seen}", agent="tier-victim-back", token=alice["token"]) as back:
        hello = await recv_json(back)
        assert [m["seq"] for m in hello["messages"]] == [a["seq"] for a in acks] == [seen + 1, seen + 2, seen + 3]
        assert [m["body"] for m in hello["messages"]] == [f"while away {n}" for n in range(3)]
    stack.wait_restarted(victim_container, restarts)


@pytest.mark.parametrize("service", ["redis", "postgres", "nginx"])
async def test_a_killed_service_comes_back_by_itself_and_the_chat_works_again(stack, service):
    container = stack.containers(service)[0]
    restarts = stack.kill_main_process(container)
    stack.wait_restarted(container, restarts)
    stack.wait_healthy({"web": 3})
    # nginx has no health check of its own: "running" comes before it listens again, so wait
    # (bounded) until the public port serves /healthz once more.
    _until_served(stack, timeout=60)
    alice, bob = KEPT["alice"], KEPT["bob"]
    path = f"/ws/rooms/{KEPT['slug']}/"
    async with wss(stack, path, agent=f"tier-after-{service}", token=alice["token"]) as a, \
            wss(stack, path, agent=f"tier-after-{service}", token=bob["token"]) as b:
        await recv_json(a)
        await recv_json(b)
        ack = await send_until_acked(a, f"after {service} restart", f"after-{service}")
        message = await recv_type(b, "message", timeout=30)
        assert (message["body"], message["seq"]) == (f"after {service} restart", ack["seq"])


def _until_served(stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{stack.origin}/healthz", timeout=5, context=stack.ssl) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"https://localhost:{stack.https_port}/healthz not served again"
        time.sleep(0.25)


def test_every_long_running_service_has_a_restart_policy(stack):
    for service in LONG_RUNNING:
        for container in stack.containers(service):
            assert stack.inspect(container)["HostConfig"]["RestartPolicy"]["Name"] in {"unless-stopped", "always"}


async def test_scaling_to_four_is_picked_up_by_nginx_without_a_restart(stack):
    [nginx] = stack.containers("nginx")
    started = stack.inspect(nginx)["State"]["StartedAt"]
    stack.up("--no-recreate", "--scale", "web=4")
    stack.wait_healthy({"web": 4})
    newest = stack.containers("web")[-1]
    alice = KEPT["alice"]
    # nginx re-resolves `web` every 10 s: hold four sockets at once (least_conn spreads
    # them) until one of them lands on the new replica.
    deadline = time.monotonic() + 40
    while not await _four_sockets_reach(stack, newest, alice):
        assert time.monotonic() < deadline, "nginx never sent a connection to the fourth replica"
    assert stack.containers("nginx") == [nginx]  # the same container, neither recreated
    assert stack.inspect(nginx)["State"]["StartedAt"] == started  # nor restarted


async def _four_sockets_reach(stack, container: str, owner: dict) -> bool:
    path = f"/ws/rooms/{KEPT['slug']}/"
    sockets = [await wss(stack, path, agent="tier-scale", token=owner["token"]) for _ in range(4)]
    try:
        for ws in sockets:
            await recv_json(ws)
        return stack.established_to(container) > 0
    finally:
        for ws in sockets:
            await ws.close()
        await asyncio.sleep(1)  # pace the retries to nginx's re-resolution, not a tight loop


def test_the_first_admin_is_made_with_createsuperuser_noinput(stack):
    env = {"DJANGO_SUPERUSER_USERNAME": "root-admin", "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
           "DJANGO_SUPERUSER_EMAIL": "admin@example.com"}
    flags = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    result = stack.compose("run", "--rm", *flags, "web", "python", "manage.py", "createsuperuser", "--noinput")
    assert "Superuser created successfully" in result.stdout
    assert "Site administration" in _admin_index(stack, "root-admin", PASSWORD)


def _admin_index(stack, username: str, password: str) -> str:
    """Log in through the admin's own login page and return the admin index page."""
    jar = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(jar, urllib.request.HTTPSHandler(context=stack.ssl))
    page = opener.open(f"{stack.origin}/admin/login/?next=/admin/", timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf,
                                   "next": "/admin/"}).encode()
    request = urllib.request.Request(f"{stack.origin}/admin/login/?next=/admin/", data=form, headers={
        "Referer": f"{stack.origin}/admin/login/", "Origin": stack.origin})
    with opener.open(request, timeout=10) as response:
        assert response.url == f"{stack.origin}/admin/"
        return response.read().decode()


def test_a_secret_key_given_in_the_environment_wins_over_the_generated_one(stack):
    code = "import hashlib; from django.conf import settings; print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest())"
    given = stack.compose("run", "--rm", "--no-deps", "-e", "DJANGO_SECRET_KEY=given-by-the-operator", "web",
                          "python", "-c", f"import django; django.setup(); {code}").stdout.split()[-1]
    assert given == hashlib.sha256(b"given-by-the-operator").hexdigest()
    generated = stack.manage("shell", "--no-startup", "-c", code).split()[-1]
    stored = stack.compose("exec", "-T", "web", "cat", "/srv/secrets/secret_key").stdout.strip()
    assert generated == hashlib.sha256(stored.encode()).hexdigest() != given


async def test_down_then_up_keeps_history_accounts_and_sessions(stack):
    alice, slug = KEPT["alice"], KEPT["slug"]
    status, before = http_json("GET", f"{stack.origin}/api/rooms/{slug}/messages/?limit=100", token=alice["token"],
                               ssl_context=stack.ssl)
    assert status == 200 and before["messages"]
    stack.compose("down", "--timeout", "20")
    assert stack.containers("web") == []
    stack.up("--scale", "web=3")
    stack.wait_healthy({"redis": 1, "postgres": 1, "web": 3, "nginx": 1})
    status, after = http_json("GET", f"{stack.origin}/api/rooms/{slug}/messages/?limit=100", token=alice["token"],
                              ssl_context=stack.ssl)
    assert status == 200 and after["messages"] == before["messages"]
    # The password still works, and the session from before `down` is still valid (same secret key).
    https_login(stack.origin, KEPT["bob"]["username"], PASSWORD, ssl_context=stack.ssl)
    async with wss(stack, f"/ws/rooms/{slug}/", agent="tier-after-down", cookie=KEPT["cookie"]) as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "hello" and hello["user"]["username"] == alice["username"]
        assert hello["last_seq"] == before["messages"][-1]["seq"]


def test_down_with_volumes_removes_everything_of_the_project(stack):
    stack.compose("down", "-v", "--remove-orphans", "--timeout", "20")
    engine = stack.engine
    label = f"label=com.docker.compose.project={stack.project}"
    assert engine.docker("ps", "-aq", "--filter", label).stdout.split() == []
    assert engine.docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert engine.docker("network", "ls", "-q", "--filter", label).stdout.split() == []


def test_the_engine_stops_and_leaves_the_host_network_as_it_found_it(docker_engine):
    if not docker_engine.ours:
        # Someone else's engine: the tier removed its own project above and leaves the engine running.
        assert docker_engine.answers()
        return
    docker_engine.stop()
    assert docker_engine.process.returncode is not None
    assert network_state() == docker_engine.network_before
    # The machine still reaches its package archive (one bounded request).
    with urllib.request.urlopen(_archive_release_url(), timeout=30) as response:
        assert response.status == 200


def _archive_release_url() -> str:
    return f"{debian_archive(Path(host_sources()).read_text())}/dists/bookworm/Release"

