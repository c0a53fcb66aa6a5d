"""Start Daphne the way every deployment of this project does: `python -m chatproject.server`.

Reads its listening setup from the environment (see README.md "Settings"), so make run,
the cluster, docker compose and the live tests all start the same server. Extra command
line arguments are passed on to Daphne.
"""

import os
import sys

from chatproject import metrics_setup
from chatproject.env import env_bool, env_float

DEFAULT_APP = "chatproject.asgi:application"


def _escape(value: str) -> str:
    """Escape a value for a Twisted endpoint string."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def endpoints(env: dict[str, str]) -> list[str]:
    """Return the Twisted endpoint strings to listen on."""
    backlog = env.get("CHAT_BACKLOG", "1024")
    unix_socket = env.get("CHAT_UNIX_SOCKET")
    if unix_socket:
        return [f"unix:{_escape(unix_socket)}:backlog={backlog}"]
    cert, key = env.get("CHAT_TLS_CERT"), env.get("CHAT_TLS_KEY")
    port = env.get("CHAT_PORT") or ("8443" if cert else "8000")
    http_port = env.get("CHAT_HTTP_PORT")  # plain HTTP beside TLS: Django redirects its pages
    binds = [b.strip() for b in env.get("CHAT_BIND", "127.0.0.1").split(",") if b.strip()]
    result = []
    for bind in binds:
        interface = _escape(bind.strip("[]"))
        if cert and key:
            result.append(
                f"ssl:port={port}:interface={interface}:backlog={backlog}"
                f":privateKey={_escape(key)}:certKey={_escape(cert)}"
            )
        else:
            result.append(f"tcp:port={port}:interface={interface}:backlog={backlog}")
        if http_port:
            result.append(f"tcp:port={http_port}:interface={interface}:backlog={backlog}")
    return result


def hard_cap(env: dict[str, str]) -> int:
    """Return the largest frame or message accepted: the attachment limit plus 64 KiB."""
    return int(env.get("CHAT_MAX_ATTACHMENT_BYTES") or 10 * 1024 * 1024) + 64 * 1024


def daphne_args(env: dict[str, str]) -> list[str]:
    """Build Daphne's command line from the environment."""
    cap = hard_cap(env)  # protocol section 7: anything larger drops the connection
    args = []
    for endpoint in endpoints(env):
        args += ["-e", endpoint]
    args += [
        "--ping-interval", env.get("CHAT_PING_INTERVAL", "20"),
        "--ping-timeout", env.get("CHAT_PING_TIMEOUT", "30"),
        "--websocket-max-message-size", str(cap),
        "--websocket-max-frame-size", str(cap),
        "--application-close-timeout", "10",
        "-v", env.get("CHAT_DAPHNE_VERBOSITY", "1"),
    ]
    if env_bool("DJANGO_BEHIND_PROXY", False, env):
        args.append("--proxy-headers")
    return args + [env.get("CHAT_ASGI_APP", DEFAULT_APP)]


def gc_thresholds(env: dict[str, str]) -> tuple[int, ...]:
    """Return the collector thresholds CHAT_GC_THRESHOLDS asks for ("700,10,100"), or the adapter's default."""
    from chatproject.daphne_adapter import GC_THRESHOLDS

    raw = env.get("CHAT_GC_THRESHOLDS", "").strip()
    if not raw:
        return GC_THRESHOLDS
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or min(values) < 0:
        raise SystemExit(f"CHAT_GC_THRESHOLDS={raw!r}: expected 1 to 3 comma-separated whole numbers >= 0, "
                         f"e.g. {','.join(map(str, GC_THRESHOLDS))}")
    return values


def main(argv: list[str] | None = None) -> None:
    """Run Daphne in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    from daphne.cli import CommandLineInterface

    from chatproject.daphne_adapter import chat_server_class

    env = dict(os.environ)
    metrics_setup.configure(env)  # before anything creates a metric
    cli = CommandLineInterface()
    cli.server_class = chat_server_class(
        compression=env_bool("CHAT_WS_COMPRESSION", True, env), max_inflated=hard_cap(env),
        shutdown_grace=env_float("CHAT_SHUTDOWN_GRACE", 10.0, env), gc_thresholds=gc_thresholds(env),
        upgrade_first=env_bool("CHAT_UPGRADE_FIRST", True, env),
    )
    extra = sys.argv[1:] if argv is None else argv
    cli.run(extra + daphne_args(env))


if __name__ == "__main__":
    main()
