"""Where the Prometheus metrics of a worker live: its own memory, or files shared by the workers of a stack.

With CHAT_METRICS_DIR unset each process keeps its own counters (one Daphne: `make run`).
With it set, every worker writes its metrics into that directory (prometheus-client's
multi-process mode) and any worker's /metrics answers for all of them: `make cluster`
points its workers at one directory, compose its replicas at one volume. Files are named
by host and pid, since replicas in containers each run as pid 1.

configure() runs once at server start, before anything creates a metric.
"""

import os
import socket
from collections.abc import Mapping

_HOST = socket.gethostname()


def process_identifier() -> str:
    """Name this process in the shared directory: unique across the containers and processes of a stack.

    prometheus-client calls it on every metric update (to notice a fork), so the host name,
    which a process cannot change under its own feet, is read once.
    """
    return f"{_HOST}-{os.getpid()}"


def configure(env: Mapping[str, str]) -> str | None:
    """Switch prometheus-client to the shared directory named by CHAT_METRICS_DIR, if any; return it."""
    directory = env.get("CHAT_METRICS_DIR")
    if not directory:
        return None
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import multiprocess, values

    # prometheus-client's documented factory: values are files named by this identifier.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    # A process restarted under the same identifier (a container's pid 1) starts its live
    # gauges (open sockets) from zero, not from the dead process's last value.
    multiprocess.mark_process_dead(process_identifier(), directory)
    return directory


def process_ended() -> None:
    """Drop this process's live gauges from the shared directory (a draining worker calls it last)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_identifier(), directory)
