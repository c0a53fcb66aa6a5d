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


def _name_this_process() -> None:
    global _identifier
    _identifier = f"{socket.gethostname()}-{os.getpid()}"


_identifier = ""
_name_this_process()
# A forked child names itself at once: the name changes exactly when the pid does.
os.register_at_fork(after_in_child=_name_this_process)


def process_identifier() -> str:
    """Name this process in the shared directory: unique across the containers and processes of a stack.

    prometheus-client calls it on every metric update, to notice a fork: with a getpid()
    system call and a format each time, that was ~58 system calls per message on the cluster's
    100 x 10 (strace -c). The name is made once per process instead, and again in a forked child.
    """
    return _identifier


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
