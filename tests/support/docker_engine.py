"""A Docker engine for the compose tier: the one already running, or a dockerd of our own.

Our own dockerd is started so that it changes nothing on the host that would need undoing:
no default bridge (`docker0`), no iptables rules, no IP forwarding. Builds use host
networking; containers talk among themselves on the compose project's own bridge, and
published ports are forwarded by docker-proxy on 127.0.0.1. Its images live under
STATE_DIR, so stand-ins built once are reused by later runs. It is stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STATE_DIR = Path(os.environ.get("CHAT_TIER_DOCKER_ROOT", "/var/lib/chat-compose-tier"))
RUN_DIR = Path("/run/chat-compose-tier")
FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def _out(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return ""


def network_state() -> dict[str, str]:
    """What a container engine could change on the host's network: links, addresses, routes, rules, forwarding."""
    state = {
        "links": "\n".join(sorted(line.split(":")[1].split("@")[0].strip()
                                  for line in _out("ip", "-o", "link").splitlines())),
        "addresses": _out("ip", "-o", "addr"),
        "routes": _out("ip", "route") + _out("ip", "-6", "route"),
        "iptables": _strip_counters(_out("iptables-save")),
        "ip6tables": _strip_counters(_out("ip6tables-save")),
    }
    for path in FORWARDING:
        state[path] = Path(path).read_text().strip() if Path(path).exists() else ""
    return state


def _strip_counters(rules: str) -> str:
    """iptables-save output without its timestamps and packet counters."""
    return "\n".join(line.split(" [")[0] if line.startswith(":") else line
                     for line in rules.splitlines() if not line.startswith("#"))


@dataclass
class DockerEngine:
    """The engine the tier talks to; `env` points the docker CLI and Compose at it."""

    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    network_before: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def ours(self) -> bool:
        return self.process is not None

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def answers(self) -> bool:
        return self.docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0

    @classmethod
    def start_or_reuse(cls) -> DockerEngine:
        """Use a running engine if the docker CLI reaches one; otherwise start dockerd."""
        if not shutil.which("docker"):
            raise AssertionError("the docker CLI is missing: `make test` installs Debian's docker.io")
        existing = cls()
        if existing.answers():
            return existing
        if not shutil.which("dockerd"):
            raise AssertionError("dockerd is missing: `make test` installs Debian's docker.io")
        if os.geteuid() != 0:
            raise AssertionError("starting dockerd needs root (the compose tier runs a Docker engine)")
        engine = cls(env={"DOCKER_HOST": f"unix://{RUN_DIR}/docker.sock"}, network_before=network_state())
        engine._spawn()
        return engine

    def _spawn(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = STATE_DIR / "dockerd.log"
        args = [
            "dockerd",
            "--host", self.env["DOCKER_HOST"],
            "--data-root", str(STATE_DIR / "data"),
            "--exec-root", str(RUN_DIR / "exec"),
            "--pidfile", str(RUN_DIR / "dockerd.pid"),
            # Nothing on the host to undo: no docker0, no NAT or filter rules, no forwarding.
            "--bridge", "none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.process.returncode}; see {self.log_path}:\n"
                                     + self.log_path.read_text()[-3000:])
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dockerd did not answer within 60 s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop our dockerd (and the containerd it started) by pid; leave a reused engine alone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # containerd and shims run in dockerd's session: nothing of it may outlive the tier.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
