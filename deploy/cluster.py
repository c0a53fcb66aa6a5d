"""Run the chat as a multi-worker cluster on this machine: Redis, PostgreSQL, N Daphne workers, nginx.

The same processes as docker-compose.yml, without containers. Used as a library by the
cluster test tier and as a CLI by `make cluster`:

    python deploy/cluster.py start --workers 2 --dir var/cluster --https-port 8443 --http-port 8080
    python deploy/cluster.py stop --dir var/cluster

Nothing is installed here (see deploy/install-system-deps.sh); everything runs as a child
process with its data and logs under the work directory.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE_FILE = "cluster.json"
NGINX_DIR = REPO / "deploy" / "nginx"
BIND = "127.0.0.1"
WORKER_COMMAND = ["-m", "chatproject.server"]  # run by sys.executable, as in every deployment
ALLOWED_HOSTS = "localhost,127.0.0.1,[::1]"
# Inherited settings that would make a worker listen elsewhere or use another database.
_NOT_INHERITED = {"CHAT_TLS_CERT", "CHAT_TLS_KEY", "CHAT_UNIX_SOCKET", "CHAT_PORT", "CHAT_BIND", "SQLITE_PATH"}


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((BIND, 0))
        return s.getsockname()[1]


def django_env(*, database_url: str, redis_url: str, var_dir: Path, secret_key: str) -> dict[str, str]:
    """Return the settings every Django process of a cluster runs with (compose's web uses the same keys)."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secret_key,
        "DJANGO_ALLOWED_HOSTS": ALLOWED_HOSTS,
        "DJANGO_BEHIND_PROXY": "1",
        "CHAT_VAR_DIR": str(var_dir),
        "STATIC_ROOT": str(var_dir / "static"),
        "MEDIA_ROOT": str(var_dir / "media"),
    }


def _secret_key(workdir: Path) -> str:
    path = workdir / "secret_key"
    if not path.exists():  # one key per work directory, so sessions survive restarts
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def process_env(workdir: Path, *, database_url: str, redis_url: str) -> dict[str, str]:
    """Return the whole environment of a cluster's Django processes (workers and manage.py)."""
    inherited = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        **django_env(database_url=database_url, redis_url=redis_url, var_dir=workdir,
                     secret_key=_secret_key(workdir)),
        # Production settings, but the certificate is a self-signed one for localhost:
        # no HSTS, which a browser would otherwise apply to every localhost port for a year.
        "DJANGO_HSTS_SECONDS": "0",
        # Every worker's metrics in one directory: any worker's /metrics answers for all.
        "CHAT_METRICS_DIR": str(workdir / "metrics"),
    }


def _pg_bin(name: str) -> str:
    """Find a PostgreSQL server binary: Debian keeps them out of PATH, per major version."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    found = shutil.which(name) or (candidates[-1] if candidates else None)
    if not found:
        raise RuntimeError(f"{name} not found: run deploy/install-system-deps.sh postgresql")
    return found


def _grant_search(path: Path, uid: int, gid: int) -> None:
    """Let another user reach `path`: add o+x (search, not list) to ancestors that stop it.

    Only when root hands the data directory to `postgres`: pytest's tmp dirs are 0700.
    """
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == uid or st.st_mode & stat.S_IXOTH or (st.st_gid == gid and st.st_mode & stat.S_IXGRP):
            continue
        parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


class Service:
    """One child process whose output goes to a log file; started() waits for its ready line."""

    def __init__(self, name: str, argv: list[str], *, ready: str, log: Path, **popen):
        self.name, self.argv, self.ready, self.log_path, self.popen = name, argv, ready, log, popen
        self.process: subprocess.Popen | None = None
        self.tail: list[str] = []
        self._ready = threading.Event()
        self.stopping = False

    def spawn(self) -> None:
        """Start the process; its output is pumped to the log by a thread."""
        self._ready.clear()
        self.tail = []
        self.stopping = False
        # A new session: Ctrl-C in the CLI's terminal reaches only the CLI, which stops
        # everything in order (nginx, workers, then the stores).
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", start_new_session=True, **self.popen,
        )
        threading.Thread(target=self._pump, args=(self.process,), daemon=True, name=f"pump-{self.name}").start()

    def _pump(self, process: subprocess.Popen) -> None:
        with open(self.log_path, "a") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                self.tail = (self.tail + [line])[-40:]
                if self.ready in line:
                    self._ready.set()
        code = process.wait()
        if not self.stopping and self._ready.is_set():
            print(f"cluster: {self.name} exited with code {code}; log: {self.log_path}", file=sys.stderr)
        self._ready.set()  # wake a waiter: the process ended

    def started(self, timeout: float) -> None:
        """Wait for the ready line; raise with the log tail if the process ends or stays silent."""
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} did not start (log {self.log_path}):\n" + "".join(self.tail))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Signal the process and reap it; SIGKILL if it outlives the timeout."""
        if self.process is None:
            return
        self.stopping = True
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class Cluster:
    """Redis, PostgreSQL, `workers` Daphne processes and nginx (TLS) under one work directory."""

    def __init__(self, workdir: Path, *, workers: int = 2, https_port: int | None = None,
                 http_port: int | None = None, extra_env: dict | None = None):
        self.workdir = Path(workdir).resolve()
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.https_port = https_port or free_port()
        self.http_port = http_port or free_port()
        self.redis_port, self.postgres_port = free_port(), free_port()
        self.worker_ports = [free_port() for _ in range(workers)]
        self.redis_url = f"redis://{BIND}:{self.redis_port}/0"
        self.database_url = f"postgres://postgres@{BIND}:{self.postgres_port}/chat"
        self.cert = self.workdir / "tls" / "cert.pem"
        self.key = self.workdir / "tls" / "key.pem"
        self.env = {**process_env(self.workdir, database_url=self.database_url, redis_url=self.redis_url),
                    **(extra_env or {})}
        self.redis: Service | None = None
        self.postgres: Service | None = None
        self.nginx: Service | None = None
        self.workers: list[Service | None] = [None] * workers
        self._children: list[subprocess.Popen] = []

    @property
    def metrics_dir(self) -> Path:
        return self.workdir / "metrics"

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ws_origin(self) -> str:
        return f"wss://localhost:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trust exactly the cluster's certificate, with hostname checks on."""
        return ssl.create_default_context(cafile=str(self.cert))

    def write_state(self) -> None:
        """Record where the running cluster's stores listen, for `deploy/cluster.py manage`."""
        state = {"database_url": self.database_url, "redis_url": self.redis_url, "origin": self.origin}
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")

    # --- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start every part, migrate and collect static files; return once all answer."""
        try:
            # collectstatic needs neither database nor Redis: run it alongside their start.
            collect = self._manage_process("collectstatic", "--noinput", "--verbosity", "0")
            self._children.append(collect)
            subprocess.run(["sh", str(REPO / "deploy/make-cert.sh"), str(self.cert.parent)],
                           check=True, capture_output=True)
            self._start_redis()
            self._start_postgres(timeout)
            self.redis.started(timeout)
            self.manage("migrate", "--noinput", "--verbosity", "0")
            # The workers' shared metrics start empty with the cluster (a worker restarted
            # later keeps counting into it).
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            for i in range(len(self.workers)):
                self._spawn_worker(i)
            for i in range(len(self.workers)):
                self._await_worker(i, timeout)
            _, err = collect.communicate(timeout=timeout)
            if collect.returncode:
                raise RuntimeError(f"manage.py collectstatic failed:\n{err}")
            self._start_nginx(timeout)
        except BaseException:
            for child in self._children:
                child.kill()
                child.wait()
            self.stop()
            raise
        finally:
            self._children.clear()

    def stop(self) -> None:
        """Stop everything this cluster started, front to back; safe to call twice."""
        if self.nginx:
            self.nginx.stop(signal.SIGTERM)  # fast: a graceful quit would wait for every WebSocket
        for i in range(len(self.workers)):
            self.stop_worker(i)
        if self.postgres:
            self.postgres.stop(signal.SIGINT, timeout=30)  # "fast" shutdown: no waiting for clients
        if self.redis:
            self.redis.stop(signal.SIGTERM)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- workers ---------------------------------------------------------------------

    def start_worker(self, i: int, timeout: float = 30) -> None:
        """Start worker i (again) on its port and wait until it answers /healthz."""
        self._spawn_worker(i)
        self._await_worker(i, timeout)

    def stop_worker(self, i: int) -> None:
        """Stop worker i with SIGTERM, as a deployment would."""
        if self.workers[i]:
            self.workers[i].stop(signal.SIGTERM)

    def kill_worker(self, i: int) -> None:
        """Kill worker i with SIGKILL: no cleanup, no disconnect handlers."""
        if self.workers[i]:
            self.workers[i].stop(signal.SIGKILL)

    def worker_pid(self, i: int) -> int:
        """Return the process id of running worker i."""
        worker = self.workers[i]
        if not worker or not worker.running:
            raise RuntimeError(f"worker {i} is not running")
        return worker.process.pid

    def _spawn_worker(self, i: int) -> None:
        if self.workers[i] and self.workers[i].running:
            raise RuntimeError(f"worker {i} is already running")
        env = {**self.env, "CHAT_PORT": str(self.worker_ports[i]), "CHAT_BIND": BIND}
        self.workers[i] = Service(f"worker {i}", [sys.executable, *WORKER_COMMAND], ready="Listening on",
                                  log=self.logs / f"worker-{i}.log", cwd=REPO, env=env)
        self.workers[i].spawn()

    def _await_worker(self, i: int, timeout: float) -> None:
        self.workers[i].started(timeout)
        _get(f"http://{BIND}:{self.worker_ports[i]}/healthz")

    # --- management commands ---------------------------------------------------------

    def manage(self, *args: str) -> str:
        """Run manage.py with the cluster's environment; return its stdout."""
        process = self._manage_process(*args)
        out, err = process.communicate(timeout=300)
        if process.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{err}")
        return out

    def _manage_process(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- stores and proxy ------------------------------------------------------------

    def _start_redis(self) -> None:
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        argv = ["redis-server", "--bind", BIND, "--port", str(self.redis_port), "--dir", str(data),
                "--save", "", "--appendonly", "no", "--logfile", ""]
        self.redis = Service("redis", argv, ready="Ready to accept connections", log=self.logs / "redis.log")
        self.redis.spawn()

    def _start_postgres(self, timeout: float) -> None:
        data = self.workdir / "pg"
        user = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            data.mkdir(mode=0o700, exist_ok=True)
            os.chown(data, pw.pw_uid, pw.pw_gid)
            _grant_search(data, pw.pw_uid, pw.pw_gid)
            user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "env": {"PATH": os.defpath}}
        if not (data / "PG_VERSION").exists():
            subprocess.run([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                            "--no-locale", "--no-instructions"], check=True, capture_output=True, cwd=data, **user)
            (data / "pg_hba.conf").write_text("# Trust only this machine's loopback address.\n"
                                              "host all all 127.0.0.1/32 trust\n")
        # TCP only (no Unix socket): the socket path must fit 107 bytes, which a pytest
        # tmp dir can exceed, and the default socket dir may belong to a system cluster.
        argv = [_pg_bin("postgres"), "-D", str(data), "-c", f"listen_addresses={BIND}",
                "-c", f"port={self.postgres_port}", "-c", "unix_socket_directories=",
                "-c", "max_connections=200"]
        self.postgres = Service("postgres", argv, ready="database system is ready to accept connections",
                                log=self.logs / "postgres.log", cwd=data, **user)
        self.postgres.spawn()
        self.postgres.started(timeout)
        import psycopg  # the project's own driver; imported late so `--help` needs no venv

        with psycopg.connect(host=BIND, port=self.postgres_port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'chat'").fetchone():
                conn.execute("CREATE DATABASE chat")

    def nginx_config(self) -> str:
        """Render deploy/nginx/chat.conf.template for this cluster."""
        attachment = int(self.env.get("CHAT_MAX_ATTACHMENT_BYTES") or 10 * 1024 * 1024)
        servers = "\n".join(f"        server {BIND}:{port} max_fails=1 fail_timeout=10s;"
                            for port in self.worker_ports)
        values = {
            # Workers run as the user who started the cluster, who owns the work directory
            # (as root, nginx would otherwise switch to `nobody`, who cannot enter a 0700 tmp dir).
            "USER_DIRECTIVE": "user root;" if os.geteuid() == 0 else "",
            "MIME_TYPES": "/etc/nginx/mime.types",
            "WORKER_SERVERS": servers,
            "BIND": BIND,
            "HTTP_PORT": str(self.http_port),
            "HTTPS_PORT": str(self.https_port),
            "CERT": str(self.cert),
            "KEY": str(self.key),
            "MAX_BODY": str(attachment + 64 * 1024),
            "PROXY_CONF": str(NGINX_DIR / "chat-proxy.conf"),
            "STATIC_ROOT": self.env["STATIC_ROOT"],
        }
        text = (NGINX_DIR / "chat.conf.template").read_text()
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        return text

    def _start_nginx(self, timeout: float) -> None:
        prefix = self.workdir / "nginx"
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        (prefix / "nginx.conf").write_text(self.nginx_config())
        argv = ["nginx", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"]
        self.nginx = Service("nginx", argv, ready="start worker processes", log=self.logs / "nginx.log")
        self.nginx.spawn()
        self.nginx.started(timeout)
        _get(f"https://localhost:{self.https_port}/healthz", self.ssl_context())


def _get(url: str, context: ssl.SSLContext | None = None) -> None:
    """GET url and raise unless it answers 200."""
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")


# --- CLI ---------------------------------------------------------------------------------


def _cli_start(args: argparse.Namespace) -> None:
    workdir = Path(args.dir).resolve()
    pidfile = workdir / "cluster.pid"
    if _running_pid(pidfile):
        sys.exit(f"a cluster already runs from {workdir} (pid {_running_pid(pidfile)})")
    # Each unwinds into the finally below. SIGINT explicitly: a shell starting us in the
    # background (`&`) leaves it ignored, and the cluster would then outlive a Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cluster = Cluster(workdir, workers=args.workers, https_port=args.https_port, http_port=args.http_port)
    started = time.monotonic()
    try:
        cluster.start()
        cluster.write_state()
        pidfile.write_text(f"{os.getpid()}\n")
        print(f"\n  Chat cluster ({args.workers} workers) is up at {cluster.origin}  "
              f"(self-signed certificate: accept it once)  [{time.monotonic() - started:.1f} s]\n"
              f"  Workers: {', '.join(f'http://{BIND}:{p}' for p in cluster.worker_ports)}\n"
              f"  Metrics (Prometheus, all workers): http://{BIND}:{cluster.worker_ports[0]}/metrics\n"
              f"  Logs: {cluster.logs}\n"
              f"  Make an admin user:  make cluster-manage ARGS=createsuperuser\n"
              f"  Stop with Ctrl-C or `make cluster-stop`.\n", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("cluster: stopping", file=sys.stderr)
        cluster.stop()
        pidfile.unlink(missing_ok=True)
        (workdir / STATE_FILE).unlink(missing_ok=True)


def _running_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def _cli_stop(args: argparse.Namespace) -> None:
    pidfile = Path(args.dir).resolve() / "cluster.pid"
    pid = _running_pid(pidfile)
    if pid is None:
        print(f"no cluster running from {pidfile.parent}")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # not our child: nothing to wait on but its pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("cluster stopped")
            return
        time.sleep(0.1)
    sys.exit(f"cluster (pid {pid}) did not stop within 90 s")


def _cli_manage(args: argparse.Namespace) -> None:
    """Run manage.py against the running cluster's database and Redis (createsuperuser, shell, ...)."""
    workdir = Path(args.dir).resolve()
    if _running_pid(workdir / "cluster.pid") is None:
        sys.exit(f"no cluster running from {workdir}: start one with `make cluster`")
    state = json.loads((workdir / STATE_FILE).read_text())
    env = process_env(workdir, database_url=state["database_url"], redis_url=state["redis_url"])
    command = [sys.executable, "manage.py", *args.args]
    os.chdir(REPO)
    os.execvpe(command[0], command, env)  # the terminal stays manage.py's: prompts work


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and start or stop a cluster."""
    parser = argparse.ArgumentParser(prog="deploy/cluster.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run a cluster in the foreground until Ctrl-C or SIGTERM")
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--dir", default="var/cluster")
    start.add_argument("--https-port", type=int, default=8443)
    start.add_argument("--http-port", type=int, default=8080)
    start.set_defaults(func=_cli_start)
    stop = sub.add_parser("stop", help="stop the cluster running from --dir")
    stop.add_argument("--dir", default="var/cluster")
    stop.set_defaults(func=_cli_stop)
    manage = sub.add_parser("manage", help="run manage.py against the cluster running from --dir")
    manage.add_argument("--dir", default="var/cluster")
    manage.add_argument("args", nargs=argparse.REMAINDER, help="manage.py's arguments, e.g. createsuperuser")
    manage.set_defaults(func=_cli_manage)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
