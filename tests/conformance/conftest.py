"""An echo Daphne (plain ws://, compression on) and an nginx in front of it, for kosoku."""

import os
import shutil
from pathlib import Path

import pytest

from deploy.cluster import Service
from tests.support.server import REPO, free_port, live_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory):
    env = {"CHAT_ASGI_APP": "tests.conformance.echo_asgi:application", "CHAT_WS_COMPRESSION": "1",
           "CHAT_DAPHNE_VERBOSITY": "0"}
    if os.environ.get("CHAT_CONFORMANCE_FULL"):
        env["CHAT_MAX_ATTACHMENT_BYTES"] = str(17 * 1024 * 1024)  # room for the 16 MiB cases
    with live_server(tmp_path_factory.mktemp("echo"), extra_env=env, tls=False) as server:
        yield server


@pytest.fixture(scope="session")
def echo_nginx(tmp_path_factory, echo_server):
    if not shutil.which("nginx"):
        pytest.fail("nginx is missing: `make test` installs Debian's nginx package")
    prefix = tmp_path_factory.mktemp("nginx")
    for sub in ("tmp", "logs"):
        (prefix / sub).mkdir()
    port = free_port()
    config = (HERE / "nginx.conf.template").read_text()
    for key, value in {
        "@PORT@": str(port),
        "@UPSTREAM_PORT@": str(echo_server.port),
        "@PROXY_CONF@": str(REPO / "deploy" / "nginx" / "chat-proxy.conf"),
    }.items():
        config = config.replace(key, value)
    (prefix / "nginx.conf").write_text(config)
    service = Service(
        "nginx",
        ["nginx", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"],
        ready="start worker processes",
        log=prefix / "logs" / "nginx.log",
    )
    service.spawn()
    try:
        service.started(20)
        yield port
    finally:
        service.stop()
