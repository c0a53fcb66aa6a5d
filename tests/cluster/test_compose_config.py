"""docker-compose.yml, as Compose itself reads it, deploys what deploy/cluster.py runs natively."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.cluster import WORKER_COMMAND, Cluster, django_env

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"redis", "postgres", "migrate", "web", "nginx"}


def compose_config(**env: str) -> subprocess.CompletedProcess:
    """Run `docker-compose config` on the repository's compose file."""
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is missing: `make test` installs Debian's docker-compose package")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "POSTGRES_", "CHAT_"))}
    return subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def nginx_files(config) -> dict[str, str]:
    """The nginx config files mounted into the nginx service, by container path."""
    files = {}
    for volume in config["services"]["nginx"]["volumes"]:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if source.startswith("/") and Path(source).is_file():
            files[target] = Path(source).read_text()
    return files


def test_compose_defines_every_service_of_the_cluster(config):
    assert SERVICES <= set(config["services"])


def test_compose_needs_no_environment_and_a_given_secret_key_wins():
    bare = compose_config()
    assert bare.returncode == 0, bare.stderr
    services = yaml.safe_load(bare.stdout)["services"]
    for name in ("migrate", "web"):
        env = services[name]["environment"]
        assert env["DJANGO_SECRET_KEY"] in ("", None)
        assert env["DJANGO_SECRET_KEY_FILE"] == "/srv/secrets/secret_key"
        assert services[name]["depends_on"]["secret"]["condition"] == "service_completed_successfully"
    assert "make-secret-key.sh" in " ".join(services["secret"]["command"])
    given = yaml.safe_load(compose_config(DJANGO_SECRET_KEY="from-the-operator").stdout)["services"]
    assert given["web"]["environment"]["DJANGO_SECRET_KEY"] == "from-the-operator"


def test_compose_image_names_default_to_the_official_images():
    services = yaml.safe_load(compose_config().stdout)["services"]
    assert {services[name]["image"] for name in ("redis", "postgres", "nginx")} == {
        "redis:7-bookworm", "postgres:15-bookworm", "nginx:1.28-bookworm"}
    assert services["web"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"


def test_web_runs_the_same_server_command_as_cluster_workers(config):
    web = config["services"]["web"]
    assert "entrypoint" not in web
    assert web["command"] == ["python", *WORKER_COMMAND]


def test_web_environment_has_every_setting_the_native_cluster_sets(config):
    native = django_env(database_url="postgres://x/chat", redis_url="redis://x/0", var_dir=Path("/v"), secret_key="k")
    web_env = config["services"]["web"]["environment"]
    assert set(native) <= set(web_env)
    assert web_env["DATABASE_URL"].startswith("postgres://")
    assert web_env["REDIS_URL"].startswith("redis://")
    assert web_env["DJANGO_BEHIND_PROXY"] == native["DJANGO_BEHIND_PROXY"] == "1"
    assert web_env["DJANGO_ENV"] == "production"


def test_web_can_be_scaled(config):
    web = config["services"]["web"]
    assert "container_name" not in web
    assert "ports" not in web


def test_web_starts_after_migrations_and_redis(config):
    depends = config["services"]["web"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == "service_healthy"
    assert "healthz" in " ".join(config["services"]["web"]["healthcheck"]["test"])


def test_nginx_publishes_https_on_loopback_by_default(config):
    ports = config["services"]["nginx"]["ports"]
    published = {p if isinstance(p, str) else f"{p.get('host_ip')}:{p['published']}:{p['target']}/tcp" for p in ports}
    assert published == {"127.0.0.1:8443:443/tcp", "127.0.0.1:8080:80/tcp", "127.0.0.1:9090:9090/tcp"}
    everywhere = yaml.safe_load(compose_config(CHAT_PUBLISH_ADDRESS="0.0.0.0").stdout)
    assert "0.0.0.0:8443:443/tcp" in everywhere["services"]["nginx"]["ports"]
    assert "127.0.0.1:9090:9090/tcp" in everywhere["services"]["nginx"]["ports"]  # metrics stay on loopback


def test_compose_nginx_proxies_websockets_with_upgrade_headers(nginx_files):
    template = nginx_files["/etc/nginx/templates/default.conf.template"]
    ws = re.search(r"location /ws/ \{(.*?)\}", template, re.S)
    assert ws and "proxy_pass http://chat_workers;" in ws.group(1)
    # The proxy headers live in a shared include; it must be mounted where the template includes it.
    included = [nginx_files[path] for path in re.findall(r"^\s*include (\S+);", template, re.M)]
    headers = template + "".join(included)
    assert "proxy_set_header Upgrade $http_upgrade;" in headers
    assert "proxy_set_header Connection $connection_upgrade;" in headers
    assert re.search(r"map \$http_upgrade \$connection_upgrade", template)


def test_compose_nginx_finds_every_web_replica(config, nginx_files):
    template = nginx_files["/etc/nginx/templates/default.conf.template"]
    upstream = re.search(r"upstream chat_workers \{(.*?)\}", template, re.S).group(1)
    assert re.search(r"server web:8000 resolve\b", upstream)
    assert "zone " in upstream  # without it nginx refuses `resolve` at start
    assert "resolver 127.0.0.11" in upstream
    # `resolve` in an upstream server is in open source nginx from 1.27.3 on.
    version = re.match(r"nginx:(\d+)\.(\d+)", config["services"]["nginx"]["image"])
    assert version and (int(version[1]), int(version[2])) >= (1, 28)


def test_native_nginx_config_is_accepted_by_nginx(tmp_path):
    if not shutil.which("nginx"):
        pytest.fail("nginx is missing: `make test` installs Debian's nginx package")
    cluster = Cluster(tmp_path, workers=3)
    subprocess.run(["sh", str(REPO / "deploy/make-cert.sh"), str(cluster.cert.parent)], check=True, capture_output=True)
    (tmp_path / "nginx" / "tmp").mkdir(parents=True)
    (tmp_path / "nginx" / "logs").mkdir()
    (tmp_path / "nginx" / "nginx.conf").write_text(cluster.nginx_config())
    result = subprocess.run(["nginx", "-t", "-p", f"{tmp_path}/nginx/", "-c", "nginx.conf", "-e", "stderr"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"@[A-Z_]+@", cluster.nginx_config())  # every placeholder filled
