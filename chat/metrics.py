"""The Prometheus metrics of the chat (served at /metrics; deploy/grafana/chat.json charts them).

Counted where the work happens, once per event rather than per socket where a broadcast
reaches many: a room event adds its recipients to frames_out in one step. In multi-process
mode (chatproject/metrics_setup.py) each update is a write to a shared file.
"""

import time

from prometheus_client import Counter, Gauge, Histogram

SOCKETS_OPEN = Gauge("chat_sockets_open", "Open sockets past hello, by kind", ["kind"], multiprocess_mode="livesum")
HANDSHAKES = Counter("chat_handshakes_total", "Socket handshakes by outcome (hello, or the close code)", ["outcome"])
USER_SOCKET_REFRESHES = Counter("chat_user_socket_refreshes_total",
                                "Room states a user socket read afresh (a lost or out-of-order event, a stale snapshot)")
MESSAGES_STORED = Counter("chat_messages_stored_total", "Messages committed")
FRAMES_IN = Counter("chat_frames_in_total", "Frames read from clients, by type", ["type"])
FRAMES_OUT = Counter("chat_frames_out_total", "Frames written to clients, by type", ["type"])
ERRORS = Counter("chat_errors_total", "Error frames sent, by code", ["code"])
RATE_LIMITED = Counter("chat_rate_limited_total", "Messages refused by the per-user rate limit")
AUTHORITY_ENDED = Counter("chat_authority_closes_total", "Sockets closed because what let them in ended, by code",
                          ["code"])
PRESENCE_SWEPT = Counter("chat_presence_sweeps_total", "Rooms whose dead worker's users were swept")
BATCH_SIZE = Histogram("chat_store_batch_size", "Messages per group-commit batch",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200))
COMMIT_SECONDS = Histogram("chat_store_commit_seconds", "Time to store one batch (its database round trip)",
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1))
DELIVERY_SECONDS = Histogram("chat_delivery_seconds", "From a batch's commit to the write to each local socket",
                             buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1))
REDIS_SECONDS = Histogram("chat_redis_seconds", "Redis calls, by operation", ["op"],
                          buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25))
HANDSHAKE_DB_SECONDS = Histogram("chat_handshake_db_seconds", "The handshake's one database trip",
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))
HANDSHAKE_READS = Counter("chat_handshake_reads_total",
                          "Where a room socket's handshake read the database: the loop's own connection or the thread",
                          ["where"])

_bound: dict[tuple, object] = {}  # (metric, label) -> its child


def child(metric, label: str):
    """The metric's child for one label value, kept: labels() takes a lock and builds a key per call."""
    found = _bound.get((metric, label))
    if found is None:
        found = _bound[(metric, label)] = metric.labels(label)
    return found


def frame_in(kind: str) -> None:
    """Count a frame read from a client."""
    child(FRAMES_IN, kind).inc()


def handshake_read(where: str) -> None:
    """Count a handshake's database read: "loop" (chat/store/loop_reads.py) or "thread"."""
    child(HANDSHAKE_READS, where).inc()


def frame_out(kind: str, count: int = 1) -> None:
    """Count frames written to clients."""
    child(FRAMES_OUT, kind).inc(count)


def error(code: str) -> None:
    """Count an error frame sent."""
    child(ERRORS, code).inc()


class timed:
    """Observe how long a block takes into a histogram: `with timed(REDIS_SECONDS.labels("take")):`."""

    __slots__ = ("histogram", "started")

    def __init__(self, histogram) -> None:
        self.histogram = histogram

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.histogram.observe(time.perf_counter() - self.started)
