"""Build local stand-ins for the images docker-compose.yml names, from Debian packages.

For machines that reach Debian's package archive but no image registry. Each base is a
minbase root file system made by mmdebstrap from this machine's own apt sources and
imported into Docker; each stand-in is a small Dockerfile under deploy/standins/ on that
base. Images are labelled with a key of everything they are built from and reused while
the key matches, so only the first run pays (about a minute).

    python -m deploy.standin_images          # build what is missing, print the variables
    eval "$(python -m deploy.standin_images)" && docker compose up --build

The variables it prints are the ones docker-compose.yml takes its image names from.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "standins"
LABEL = "org.chat.standin.key"
SOURCES_FILES = ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")
MMDEBSTRAP = ["mmdebstrap", "--variant=minbase", "--quiet"]


@dataclass(frozen=True)
class Base:
    """A Debian root file system imported as an image."""

    suite: str
    tag: str

    def sources(self) -> tuple[list[str], str]:
        """Return (extra mmdebstrap options, sources argument) for this suite."""
        host = host_sources()
        if self.suite == "bookworm":
            return [], host
        # Another suite of the same archive the machine uses: its Release file may be past
        # Valid-Until on a snapshot mirror, which apt would refuse.
        return (["--aptopt=Acquire::Check-Valid-Until \"false\""],
                f"deb {debian_archive(Path(host).read_text())} {self.suite} main")


@dataclass(frozen=True)
class Standin:
    """One stand-in image: the variable compose reads its name from, and what it replaces."""

    variable: str
    replaces: str
    folder: str
    base: Base
    tag: str


BOOKWORM = Base("bookworm", "chat-standin/base:bookworm")
SID = Base("sid", "chat-standin/base:sid")
STANDINS = (
    Standin("CHAT_PYTHON_IMAGE", "python:3.11-slim-bookworm", "python", BOOKWORM, "chat-standin/python:3.11-bookworm"),
    Standin("CHAT_REDIS_IMAGE", "redis:7-bookworm", "redis", BOOKWORM, "chat-standin/redis:7-bookworm"),
    Standin("CHAT_POSTGRES_IMAGE", "postgres:15-bookworm", "postgres", BOOKWORM, "chat-standin/postgres:15-bookworm"),
    Standin("CHAT_NGINX_IMAGE", "nginx:1.28-bookworm", "nginx", SID, "chat-standin/nginx:sid"),
)


def host_sources() -> str:
    """Return the path of this machine's Debian apt sources."""
    for path in SOURCES_FILES:
        if Path(path).is_file() and Path(path).read_text().strip():
            return path
    raise RuntimeError(f"no Debian apt sources found (looked at {', '.join(SOURCES_FILES)})")


def debian_archive(sources: str) -> str:
    """Return the URI of the main Debian archive named in an apt sources text (deb822 or one-line)."""
    for uri in re.findall(r"(?m)^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", sources):
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise RuntimeError("the apt sources name no Debian archive (a URI ending in /debian)")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()[:16]


def base_key(base: Base) -> str:
    """Key of a base: the mmdebstrap command and the sources it reads."""
    options, sources = base.sources()
    text = Path(sources).read_bytes() if sources.startswith("/") else sources.encode()
    return _digest(" ".join([*MMDEBSTRAP, *options, base.suite]).encode(), text)


def standin_key(standin: Standin) -> str:
    """Key of a stand-in: its base's key and every file in its folder."""
    folder = HERE / standin.folder
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return _digest(base_key(standin.base).encode(),
                   *(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() for p in files))


class Docker:
    """The docker CLI against one engine."""

    def __init__(self, env: dict[str, str] | None = None, log=print):
        self.env = {**os.environ, **(env or {})}
        self.log = log

    def run(self, *args: str, check: bool = True, capture: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=check, text=True, timeout=timeout,
                              capture_output=capture)

    def label(self, image: str) -> str | None:
        """Return the stand-in key label of a local image, or None if there is no such image."""
        result = self.run("image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def ensure_base(self, base: Base) -> None:
        key = base_key(base)
        if self.label(base.tag) == key:
            return
        options, sources = base.sources()
        with tempfile.TemporaryDirectory(prefix="chat-rootfs-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            self.log(f"making the {base.suite} root file system with mmdebstrap")
            subprocess.run([*MMDEBSTRAP, *options, base.suite, str(tar), sources], check=True, timeout=900)
            self.run("import", "--change", f"LABEL {LABEL}={key}", "--change", 'CMD ["bash"]', str(tar), base.tag)

    def ensure(self, standin: Standin) -> None:
        """Build one stand-in unless an image with its current key is there."""
        key = standin_key(standin)
        if self.label(standin.tag) == key:
            return
        self.ensure_base(standin.base)
        self.log(f"building {standin.tag} (stand-in for {standin.replaces})")
        # Host networking for RUN steps: the engine needs no bridge or NAT for the build.
        self.run("build", "--network", "host", "--build-arg", f"BASE={standin.base.tag}",
                 "--label", f"{LABEL}={key}", "-t", standin.tag, str(HERE / standin.folder), capture=False)


def ensure_all(docker: Docker) -> dict[str, str]:
    """Build every missing stand-in; return compose's image variables pointing at them."""
    for standin in STANDINS:
        docker.ensure(standin)
    return {s.variable: s.tag for s in STANDINS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    variables = ensure_all(Docker(log=lambda line: print(line, file=sys.stderr)))
    for name, tag in variables.items():
        print(f"export {name}={tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
