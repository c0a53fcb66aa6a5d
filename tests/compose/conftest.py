"""`docker compose up` for real: the repository's compose file on a real Docker engine.

The stack runs under its own project name on free host ports published on 127.0.0.1, so
it neither meets a stack a developer runs nor a `make run`. Images the compose file names
come from deploy/standin_images.py (no registry is reachable here), built once and reused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from deploy.standin_images import Docker, ensure_all
from tests.support.docker_engine import DockerEngine
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]
CA_DIR = Path("/usr/local/share/ca-certificates")
LONG_RUNNING = ("redis", "postgres", "web", "nginx")


class ComposeStack:
    """One compose project: run Compose, find containers, wait for health, read nginx's log."""

    def __init__(self, engine: DockerEngine, env: dict[str, str], project: str):
        self.engine = engine
        self.env = env
        self.project = project
        self.https_port = int(env["CHAT_HTTPS_PORT"])
        self.http_port = int(env["CHAT_HTTP_PORT"])
        self.origin = f"https://localhost:{self.https_port}"
        self.ssl: ssl.SSLContext | None = None

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        command = ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "-p", self.project, *args]
        result = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command[3:])} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                                 f"{result.stderr[-4000:]}")
        return result

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers, running or not, in replica order."""
        out = self.engine.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                                 "--filter", f"label=com.docker.compose.service={service}",
                                 "--format", '{{.ID}} {{.Label "com.docker.compose.container-number"}}').stdout
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return [cid for cid, _ in sorted(rows, key=lambda row: int(row[1]))]

    def inspect(self, container: str) -> dict:
        return json.loads(self.engine.docker("inspect", container).stdout)[0]

    def wait_healthy(self, services: dict[str, int], timeout: float = 240) -> None:
        """Wait until each service has that many containers running (and healthy where it checks)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = {}
            for service, count in services.items():
                states = [self.inspect(c)["State"] for c in self.containers(service)]
                ready = [s for s in states if s["Running"] and s.get("Health", {}).get("Status", "healthy") == "healthy"]
                if len(ready) < count:
                    pending[service] = [(s["Status"], s.get("Health", {}).get("Status")) for s in states]
            if not pending:
                return
            if time.monotonic() > deadline:
                logs = self.compose("logs", "--tail", "40", check=False).stdout
                raise AssertionError(f"not ready after {timeout:.0f} s: {pending}\n{logs[-6000:]}")
            time.sleep(0.5)

    def up(self, *args: str) -> None:
        self.compose("up", "-d", *args)

    def main_pid(self, container: str) -> int:
        return self.inspect(container)["State"]["Pid"]

    def kill_main_process(self, container: str) -> int:
        """SIGKILL the container's main process from the host, as a crash would; return the restart count before.

        `docker kill` would count as a manual stop, which no restart policy undoes.
        """
        state = self.inspect(container)
        os.kill(state["State"]["Pid"], signal.SIGKILL)
        return state["RestartCount"]

    def wait_restarted(self, container: str, restarts_before: int, timeout: float = 120) -> None:
        """Wait until the engine has restarted the container by itself and it is running (and healthy)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.inspect(container)
            health = info["State"].get("Health", {}).get("Status", "healthy")
            if info["RestartCount"] > restarts_before and info["State"]["Running"] and health == "healthy":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{container} not back after {timeout:.0f} s: restarts {info['RestartCount']}, "
                                     f"state {info['State']['Status']}, health {health}")
            time.sleep(0.5)

    def established_to(self, container: str, port: int = 8000) -> int:
        """Count established TCP connections to the container's port from outside it (from nginx).

        Read from the host through /proc/<pid>/net/tcp, the container's own network namespace.
        """
        count = 0
        for line in Path(f"/proc/{self.main_pid(container)}/net/tcp").read_text().splitlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port and not remote.startswith("0100007F"):
                count += 1
        return count

    def nginx_upstreams(self, user_agent: str) -> list[str]:
        """The upstream addresses nginx logged for requests made with this User-Agent, in order."""
        logs = self.engine.docker("logs", self.containers("nginx")[0], timeout=30).stdout
        return re.findall(rf'"{re.escape(user_agent)}" (\S+)$', logs, re.M)

    def manage(self, *args: str) -> str:
        """Run manage.py in a running web container (as `docker compose exec` would)."""
        return self.compose("exec", "-T", "web", "python", "manage.py", *args, timeout=120).stdout


def _build_ca_certs() -> str:
    """The host's extra CA certificates (a TLS-intercepting proxy's), for pip inside the build."""
    return "".join(path.read_text() for path in sorted(CA_DIR.glob("*.crt")))


@pytest.fixture(scope="session")
def docker_engine():
    engine = DockerEngine.start_or_reuse()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def stack(docker_engine, tmp_path_factory):
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is missing: `make test` installs Debian's docker-compose package")
    images = ensure_all(Docker(docker_engine.env))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "POSTGRES_", "CHAT_"))}
    env = {
        **clean, **docker_engine.env, **images,
        "CHAT_HTTPS_PORT": str(free_port()),
        "CHAT_HTTP_PORT": str(free_port()),
        "CHAT_METRICS_PORT": str(free_port()),
        "CHAT_WEB_IMAGE": "chat-web:compose-tier",
        "CHAT_BUILD_CA_CERTS": _build_ca_certs(),
        "COMPOSE_HTTP_TIMEOUT": "300",
    }
    if docker_engine.ours:
        env["CHAT_BUILD_NETWORK"] = "host"  # our engine has no default bridge for RUN steps
    stack = ComposeStack(docker_engine, env, project=f"chattier{os.getpid()}")
    try:
        stack.up("--build", "--scale", "web=3")
        stack.wait_healthy({"redis": 1, "postgres": 1, "web": 3, "nginx": 1})
        cert = tmp_path_factory.mktemp("compose-tls") / "cert.pem"
        cert.write_text(stack.compose("exec", "-T", "nginx", "cat", "/etc/nginx/tls/cert.pem").stdout)
        stack.ssl = ssl.create_default_context(cafile=str(cert))
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
