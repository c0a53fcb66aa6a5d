"""Start Daphne the way every deployment of this project does: `python -m chatproject.server`.

Reads its listening setup from the environment (see README.md "Settings"), so make run,
the cluster, docker compose and the live tests all start the same server. Extra command
line arguments are passed on to Daphne.
"""

import os
import sys

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
    return result


def daphne_args(env: dict[str, str]) -> list[str]:
    """Build Daphne's command line from the environment."""
    attachment = int(env.get("CHAT_MAX_ATTACHMENT_BYTES") or 10 * 1024 * 1024)
    hard_cap = attachment + 64 * 1024  # protocol section 7: anything larger drops the connection
    args = []
    for endpoint in endpoints(env):
        args += ["-e", endpoint]
    args += [
        "--ping-interval", env.get("CHAT_PING_INTERVAL", "20"),
        "--ping-timeout", env.get("CHAT_PING_TIMEOUT", "30"),
        "--websocket-max-message-size", str(hard_cap),
        "--websocket-max-frame-size", str(hard_cap),
        "--application-close-timeout", "10",
        "-v", env.get("CHAT_DAPHNE_VERBOSITY", "1"),
    ]
    if env.get("DJANGO_BEHIND_PROXY", "").lower() in {"1", "true", "yes", "on"}:
        args.append("--proxy-headers")
    return args + [env.get("CHAT_ASGI_APP", DEFAULT_APP)]


def main(argv: list[str] | None = None) -> None:
    """Run Daphne in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    from daphne.cli import CommandLineInterface

    extra = sys.argv[1:] if argv is None else argv
    args = daphne_args(dict(os.environ))
    CommandLineInterface().run(extra + args)


if __name__ == "__main__":
    main()
