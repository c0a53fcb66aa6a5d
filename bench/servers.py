"""The servers under test, each started and stopped by the harness on 127.0.0.1 (plain ws, no compression).

Every server tells the load client where to connect (targets), what path a room has,
which headers authenticate a connection, and which process ids make it up (for CPU and
RSS from /proc, children included: Redis, PostgreSQL backends, nginx workers).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

from deploy.cluster import Cluster
from tests.support.server import LiveServer, free_port

REPO = Path(__file__).resolve().parents[1]

PEERS = REPO / "bench" / "peers"
HOST = "127.0.0.1"
PASSWORD = "bench-pass-phrase-77"
STATIC_ROOT = Path(tempfile.gettempdir()) / "chat-bench-static"
USERS = 10  # fan-out connection i of a room uses bench user i % USERS
# Limits lifted so the bench measures the server, not its rate limiter or per-user cap.
BENCH_ENV = {
    "CHAT_WS_COMPRESSION": "0",
    "CHAT_RATE_BURST": "1000000",
    "CHAT_RATE_PER_SECOND": "1000000",
    "CHAT_MAX_CONNECTIONS_PER_USER": "0",
}

SETUP_CODE = """
import http.client
import json
from django.contrib.auth import get_user_model
from chat.domain import services
from chat.models import Room
users = []
for i in range({users}):
    u = get_user_model().objects.create_user(f"bench{{i}}", password={password!r})
    users.append(services.token_create(user=u, name="bench")[1])
Room.objects.bulk_create([Room(slug=s, name=s, private=False) for s in {rooms!r}], ignore_conflicts=True)
print(json.dumps(users))
"""


class BenchServer:
    """One server under test; subclasses start and stop it."""

    name = "server"
    label = "server"
    ready_on = "101"  # "first_frame" when the server sends a first frame (our hello)
    token_auth = False
    session_auth = False

    def start(self, workdir: Path, rooms: list[str]) -> None:
        """Start the server and create what the rooms and users need."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process this server started."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Return the root process ids; their descendants are found through /proc."""
        raise NotImplementedError

    def targets(self) -> list[dict]:
        """Return where to connect: [{host, port[, cafile, server_hostname, host_header]}]."""
        raise NotImplementedError

    def path(self, room: str) -> str:
        """Return the WebSocket path of a room."""
        return f"/{room}"

    def headers(self) -> list[str]:
        """Return the header blocks connections use (index i % len: one per bench user)."""
        return [""]

    def session_headers(self) -> str:
        """Return a Cookie header block for session auth (servers with sessions only)."""
        raise NotImplementedError


class NodeWs(BenchServer):
    """The classic `ws` broadcast server (bench/peers/ws_server.js): a room is the URL path."""

    name = "node"
    label = "Node ws"

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self, workdir: Path, rooms: list[str]) -> None:
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node is not installed (Debian: apt-get install nodejs npm)")
        if not (PEERS / "node_modules" / "ws").is_dir():
            raise RuntimeError("bench/peers/node_modules is missing: run `cd bench/peers && npm ci`")
        self.port = free_port()
        self.log = open(workdir / "node.log", "w")
        self.process = subprocess.Popen([node, str(PEERS / "ws_server.js"), str(self.port), HOST], cwd=PEERS,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.process.stdout.readline()
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"node ws server did not start: {line!r} (log {workdir / 'node.log'})")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []

    def targets(self) -> list[dict]:
        return [{"host": HOST, "port": self.port}]


class BareDaphne(NodeWs):
    """The floor: stock Daphne serving a raw ASGI relay (bench/bare_asgi.py), no Django or Channels."""

    name = "bare"
    label = "bare Daphne (raw ASGI)"

    def start(self, workdir: Path, rooms: list[str]) -> None:
        self.port = free_port()
        self.log = open(workdir / "daphne.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-v", "0", "-e", f"tcp:port={self.port}:interface={HOST}:backlog=1024",
             "bench.bare_asgi:application"], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bare daphne did not start (log {workdir / 'daphne.log'})")


class OursDaphne(BenchServer):
    """Our server as `make run` starts it, one Daphne process: SQLite, in-memory layer."""

    name = "ours"
    label = "ours (1 Daphne)"
    ready_on = "first_frame"
    token_auth = True
    session_auth = True

    def __init__(self) -> None:
        self.server: LiveServer | None = None
        self.tokens: list[str] = []

    def extra_env(self) -> dict[str, str]:
        """Return the environment this variant adds to BENCH_ENV."""
        return {}

    def start(self, workdir: Path, rooms: list[str]) -> None:
        # Static files are collected once per machine: the login page (session auth) needs them.
        env = {**BENCH_ENV, "STATIC_ROOT": str(STATIC_ROOT), **self.extra_env()}
        self.server = LiveServer(workdir, env, tls=False)
        self.setup(rooms)
        self.server.start()

    def setup(self, rooms: list[str]) -> None:
        """Migrate (and collect static files once), then create the users (with tokens) and rooms."""
        self.server.prepare(static=not (STATIC_ROOT / "staticfiles.json").exists())
        self.tokens = self.server.run_python(SETUP_CODE.format(users=USERS, password=PASSWORD, rooms=rooms))

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def pids(self) -> list[int]:
        return [self.server.process.pid] if self.server and self.server.process else []

    def targets(self) -> list[dict]:
        return [{"host": HOST, "port": self.server.port}]

    def path(self, room: str) -> str:
        return f"/ws/rooms/{room}/"

    def headers(self) -> list[str]:
        return [f"Authorization: Bearer {t}\r\n" for t in self.tokens]

    def session_headers(self) -> str:
        return f"Cookie: sessionid={login_session(f'http://{HOST}:{self.server.port}', 'bench0')}\r\n"


class NaiveDaphne(OursDaphne):
    """The Channels tutorial consumer (bench/naive_asgi.py) on the same Daphne: no auth, no storage."""

    name = "naive"
    label = "naive Channels (1 Daphne)"
    ready_on = "101"
    token_auth = False
    session_auth = False

    def extra_env(self) -> dict[str, str]:
        return {"CHAT_ASGI_APP": "bench.naive_asgi:application"}

    def setup(self, rooms: list[str]) -> None:
        self.tokens = []  # the tutorial needs no database: nothing to migrate or create

    def path(self, room: str) -> str:
        return f"/ws/naive/{room}/"

    def headers(self) -> list[str]:
        return [""]


class OursCluster(BenchServer):
    """Our cluster (deploy/cluster.py): 2 Daphne workers on Redis pub/sub and PostgreSQL, nginx in front.

    Direct: connections spread over the workers' plain ws ports. Via nginx: wss through
    nginx's TLS port (nginx's own CPU and the TLS cost included).
    """

    name = "cluster"
    label = "ours (cluster: 2 Daphne + Redis)"
    ready_on = "first_frame"
    token_auth = True

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.cluster: Cluster | None = None
        self.tokens: list[str] = []

    def start(self, workdir: Path, rooms: list[str]) -> None:
        self.cluster = Cluster(workdir, workers=self.workers, extra_env=dict(BENCH_ENV))
        self.cluster.start()
        out = self.cluster.manage("shell", "--no-startup", "-c",
                                  SETUP_CODE.format(users=USERS, password=PASSWORD, rooms=rooms))
        self.tokens = json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.cluster:
            self.cluster.stop()
            self.cluster = None

    def pids(self) -> list[int]:
        c = self.cluster
        services = [c.redis, c.postgres, c.nginx, *c.workers] if c else []
        return [s.process.pid for s in services if s and s.process]

    def worker_pids(self) -> list[int]:
        """Return the Daphne workers' process ids."""
        return [self.cluster.worker_pid(i) for i in range(self.workers)]

    def targets(self) -> list[dict]:
        return [{"host": HOST, "port": p} for p in self.cluster.worker_ports]

    def path(self, room: str) -> str:
        return f"/ws/rooms/{room}/"

    def headers(self) -> list[str]:
        return [f"Authorization: Bearer {t}\r\n" for t in self.tokens]


class ClusterViaNginx(BenchServer):
    """A view of a running OursCluster that connects through nginx (wss, the cluster's certificate)."""

    name = "cluster-nginx"
    label = "ours (cluster via nginx, wss)"
    ready_on = "first_frame"
    token_auth = True

    def __init__(self, base: OursCluster) -> None:
        self.base = base

    def start(self, workdir: Path, rooms: list[str]) -> None:
        """Nothing to start: the base cluster runs."""

    def stop(self) -> None:
        """Nothing to stop: the base cluster owns the processes."""

    def pids(self) -> list[int]:
        return self.base.pids()

    def targets(self) -> list[dict]:
        c = self.base.cluster
        return [{"host": HOST, "port": c.https_port, "cafile": str(c.cert), "server_hostname": "localhost",
                 "host_header": "localhost"}]

    def path(self, room: str) -> str:
        return self.base.path(room)

    def headers(self) -> list[str]:
        return self.base.headers()


def login_session(origin: str, username: str) -> str:
    """Log in through /accounts/login/ (CSRF cookie and token first); return the sessionid.

    By hand, not with a cookie jar: our cookies are Secure, and a jar would not send them over http.
    """
    url = urllib.parse.urlsplit(origin)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", "/accounts/login/")
    page = conn.getresponse()
    body = page.read().decode()
    csrf = SimpleCookie()
    for header in page.headers.get_all("Set-Cookie") or []:
        csrf.load(header)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    conn.request("POST", "/accounts/login/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf['csrftoken'].value}",
        "Origin": origin, "Referer": f"{origin}/accounts/login/"})
    response = conn.getresponse()
    response.read()
    conn.close()
    cookies = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookies.load(header)
    if response.status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"login failed: HTTP {response.status}")
    return cookies["sessionid"].value


# --- /proc accounting ----------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def process_tree(roots: list[int]) -> list[int]:
    """Return the roots and all their living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """Sum utime+stime+cutime+cstime over the processes (reaped children count in their parent)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """Return CPU seconds all cores of the machine spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    """Sum the resident set sizes of the processes now."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def hwm_bytes(pids: list[int]) -> int:
    """Sum VmHWM (each process's own peak RSS) over the processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


class Meter:
    """Samples a server's summed RSS in a thread; snapshot() returns CPU seconds, RSS now and peak."""

    def __init__(self, server: BenchServer, interval: float = 0.25):
        self.server, self.interval = server, interval
        self.peak = 0
        self.tree = process_tree(server.pids())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="rss-sampler")
        self._thread.start()

    def _sample(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            if n % 8 == 0:  # new children (PostgreSQL backends) appear now and then
                self.tree = process_tree(self.server.pids())
            self.peak = max(self.peak, rss_bytes(self.tree))

    def snapshot(self, reset_peak: bool = False) -> dict:
        """Return {cpu_s, rss, peak_rss}; optionally start a new peak window."""
        self.tree = process_tree(self.server.pids())
        rss = rss_bytes(self.tree)
        peak = max(self.peak, rss)
        if reset_peak:
            self.peak = rss
        return {"cpu_s": cpu_seconds(self.tree), "rss": rss, "peak_rss": peak, "processes": len(self.tree),
                "t": time.monotonic(), "busy_s": machine_busy_seconds()}

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(2)


def workdir(prefix: str) -> Path:
    """Return a fresh temporary directory for one server's files."""
    return Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
