"""Start the real server (`python -m chatproject.server`, Daphne over TLS) as a subprocess."""

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory: Path) -> tuple[Path, Path]:
    subprocess.run(["sh", str(REPO / "deploy/make-cert.sh"), str(directory)], check=True, capture_output=True)
    return directory / "cert.pem", directory / "key.pem"


class LiveServer:
    """One Daphne process serving the project over TLS on a free port, with its own SQLite file."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None, *, tls: bool = True):
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatproject.settings",
            "CHAT_VAR_DIR": str(workdir),
            "SQLITE_PATH": str(workdir / "db.sqlite3"),
            "STATIC_ROOT": str(workdir / "static"),
            "CHAT_PORT": str(self.port),
            "CHAT_BIND": "127.0.0.1",
            **(extra_env or {}),
        }
        if tls:
            self.cert, self.key = make_cert(workdir / "tls")
            self.env.update(CHAT_TLS_CERT=str(self.cert), CHAT_TLS_KEY=str(self.key))
        else:
            self.env.pop("CHAT_TLS_CERT", None)
            self.env.pop("CHAT_TLS_KEY", None)
        self.env.pop("DATABASE_URL", None)
        self.env.pop("REDIS_URL", None)
        self.process: subprocess.Popen | None = None
        self.log: list[str] = []

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ws_origin(self) -> str:
        return f"wss://localhost:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trust exactly the generated certificate, with hostname checks on."""
        return ssl.create_default_context(cafile=str(self.cert))

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def prepare(self, *, static: bool = False) -> None:
        self.manage("migrate", "--noinput", "--verbosity", "0")
        if static:
            self.manage("collectstatic", "--noinput", "--verbosity", "0")

    def run_python(self, code: str) -> object:
        """Run code in the server's database context; it must print one JSON value."""
        return json.loads(self.manage("shell", "--no-startup", "-c", code).strip().splitlines()[-1])

    def create_user(self, username: str, password: str) -> dict:
        code = (
            "import json; from django.contrib.auth import get_user_model; from chat.domain import services;"
            f"u = get_user_model().objects.create_user({username!r}, password={password!r});"
            "t = services.token_create(user=u, name='live')[1];"
            "print(json.dumps({'id': u.pk, 'username': u.username, 'token': t}))"
        )
        return self.run_python(code)

    def start(self, timeout: float = 30) -> None:
        """Start Daphne and return once it reports that it listens."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatproject.server"],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        listening = threading.Event()

        def pump():
            for line in self.process.stderr:
                self.log.append(line)
                if "Listening on" in line:
                    listening.set()
            listening.set()  # process ended: wake the waiter

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("Daphne did not start:\n" + "".join(self.log[-40:]))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@contextmanager
def live_server(workdir: Path, *, static: bool = False, extra_env=None, tls: bool = True) -> Iterator[LiveServer]:
    server = LiveServer(workdir, extra_env, tls=tls)
    server.prepare(static=static)
    server.start()
    try:
        yield server
    finally:
        server.stop()
