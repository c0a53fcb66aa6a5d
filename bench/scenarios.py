"""The scenarios: each builds a load-client spec, runs the client process and adds the server's side.

A scenario returns flat records (one per measured phase) that report.py aggregates:
server CPU comes from /proc between the client's marks, never from the client itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from bench.servers import HOST, REPO, BenchServer, Meter, OursCluster

# Offered load ladder in deliveries/s; each step's message rate is this / room size.
LADDER = [2_000, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000]
QUICK_LADDER = [2_000, 20_000]
SHAPES = [(1, 100), (10, 50), (100, 10)]  # rooms x members
CONN_ROOMS, CONN_PER_ROOM = 100, 50  # idle connections: 100 rooms of 50
USER_SOCKET_ROOM, USER_SOCKET_MEMBERS = "u1", 100  # the user-socket scenario: 1 room of 100 who joined it
USER_SOCKET_RATE = 100.0  # messages/s, well below saturation: the same load with and without user sockets


@dataclass
class Settings:
    """Durations and sizes of one bench run (full or quick)."""

    ladder: list[int] = field(default_factory=lambda: list(LADDER))
    step_s: float = 2.0
    closed_s: float = 2.5
    drain_s: float = 2.0
    shapes: list[tuple[int, int]] = field(default_factory=lambda: list(SHAPES))
    conn_levels: tuple[int, int] = (1000, 5000)
    idle_s: float = 3.0
    storm: int = 5000
    inflight: int = 100
    cross_rates: list[float] = field(default_factory=lambda: [20.0, 100.0])
    cross_s: float = 4.0
    pause_s: float = 0.3
    warmup_s: float = 0.5
    client_timeout: float = 240.0


QUICK = Settings(ladder=list(QUICK_LADDER), step_s=1.0, closed_s=1.0, drain_s=1.0, pause_s=0.1, warmup_s=0.0)


def shape_name(rooms: int, members: int) -> str:
    """Name a room shape, e.g. 10x50."""
    return f"{rooms}x{members}"


def fanout_slugs(rooms: int, members: int) -> list[str]:
    """Return the room slugs of a fan-out shape."""
    return [f"f{rooms}x{members}-{i}" for i in range(rooms)]


def all_slugs(settings: Settings) -> list[str]:
    """Return every room any scenario may use (created once per server start)."""
    slugs = [s for r, m in settings.shapes for s in fanout_slugs(r, m)]
    return slugs + [f"c{i}" for i in range(CONN_ROOMS)] + ["x1", USER_SOCKET_ROOM]


def run_client(spec: dict, meter: Meter, timeout: float, hooks: dict | None = None) -> tuple[dict, dict[str, dict]]:
    """Run the load client process on a spec; snapshot the server at each of its marks.

    hooks: mark name -> function run at that mark, before the client is told to go on.
    """
    proc = subprocess.Popen([sys.executable, "-m", "bench.loadclient"], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    marks: dict[str, dict] = {}
    result = None
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
            message = json.loads(line)
            if "mark" in message:
                marks[message["mark"]] = meter.snapshot(reset_peak=message["mark"].endswith(":start"))
                if hooks and message["mark"] in hooks:
                    marks[message["mark"]]["hook"] = hooks[message["mark"]]()
                proc.stdin.write("\n")
                proc.stdin.flush()
            elif "result" in message:
                result = message["result"]
        proc.wait(10)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        raise RuntimeError(f"load client failed (exit {proc.returncode}); spec phases "
                           f"{[p['name'] for p in spec['phases']]}")
    return result, marks


def server_side(marks: dict[str, dict], name: str, delivered: int | None = None, wall_s: float | None = None) -> dict:
    """Return the server's CPU and RSS over the phase bracketed by name:start and name:end."""
    a, b = marks[name + ":start"], marks[name + ":end"]
    cpu = b["cpu_s"] - a["cpu_s"]
    wall = wall_s or (b["t"] - a["t"])
    out = {"server_cpu_s": round(cpu, 3), "peak_rss_mb": round(b["peak_rss"] / 2**20, 1),
           "server_processes": b["processes"], "server_cpu_share": round(cpu / wall, 3),
           # Every core's busy time over the phase: server + client + anything else on the machine.
           "machine_busy_cores": round((b["busy_s"] - a["busy_s"]) / (b["t"] - a["t"]), 2)}
    if delivered:
        out["cpu_us_per_delivery"] = round(cpu / delivered * 1e6, 2)
    return out


def base_spec(server: BenchServer) -> dict:
    """Return the spec fields every scenario shares."""
    return {"targets": server.targets(), "headers": server.headers(), "ready_on": server.ready_on}


def fanout(server: BenchServer, meter: Meter, settings: Settings, rooms: int, members: int) -> list[dict]:
    """Room fan-out: stepped open-loop rates until saturation, then one closed-loop run."""
    shape = shape_name(rooms, members)
    targets, headers = len(server.targets()), len(server.headers())
    per_room_obs = max(1, min(10, 200 // rooms))
    conns = [
        {"target": (r * members + m) % targets, "path": server.path(slug), "headers": m % headers,
         "room": r, "observer": m < per_room_obs}
        for r, slug in enumerate(fanout_slugs(rooms, members)) for m in range(members)
    ]
    window = max(1, math.ceil(32 / rooms))
    # Not recorded: the first messages open database connections and warm caches.
    warmup = [{"op": "steps", "name": "warmup", "rates": [settings.ladder[0] / members], "seconds": settings.warmup_s,
               "drain": 1.0}] if settings.warmup_s else []
    spec = {**base_spec(server), "phases": [
        {"op": "connect", "name": "connect", "conns": conns, "inflight": settings.inflight},
        *warmup,
        {"op": "steps", "name": "step", "rates": [d / members for d in settings.ladder],
         "seconds": settings.step_s, "drain": settings.drain_s, "pause": settings.pause_s},
        {"op": "closed", "name": "closed", "window": window, "seconds": settings.closed_s, "drain": settings.drain_s},
        {"op": "close", "name": "close", "settle": settings.pause_s},
    ]}
    result, marks = run_client(spec, meter, settings.client_timeout)
    connect = result["phases"]["connect"]
    if connect["failed"]:
        raise RuntimeError(f"{server.name} {shape}: {connect['failed']} connections failed: {connect['failures']}")
    common = {"scenario": "fanout", "shape": shape, "rooms": rooms, "members": members,
              "client_errors": result["error_count"], "event_loop": result["event_loop"]}
    records = []
    for step in result["phases"]["step"]:
        records.append({**common, "mode": "open", **step, **server_side(marks, f"step:{step['step']}", step["delivered"])})
    closed = result["phases"]["closed"]
    records.append({**common, "mode": "closed", **closed, **server_side(marks, "closed", closed["delivered"])})
    return records


def connections(server: BenchServer, meter: Meter, settings: Settings) -> list[dict]:
    """Idle capacity at 1k and 5k connections (RSS per connection, idle CPU) and connect storms."""
    low, high = settings.conn_levels
    targets = len(server.targets())
    slugs = [f"c{i}" for i in range(CONN_ROOMS)]

    def conns(n: int, offset: int = 0) -> list[dict]:
        return [{"target": (offset + i) % targets, "path": server.path(slugs[(offset + i) % CONN_ROOMS]),
                 "headers": 0, "room": (offset + i) % CONN_ROOMS} for i in range(n)]

    phases = [
        {"op": "connect", "name": "connect-low", "conns": conns(low), "inflight": settings.inflight,
         "keep_timings": True},
        {"op": "idle", "name": "idle-low", "seconds": settings.idle_s},
        {"op": "connect", "name": "connect-high", "conns": conns(high - low, low), "inflight": settings.inflight,
         "keep_timings": True},
        {"op": "idle", "name": "idle-high", "seconds": settings.idle_s},
        {"op": "close", "name": "close", "settle": 2.0},
    ]
    headers = server.headers()[:1]
    if server.session_auth:
        headers.append(server.session_headers())
        phases += [
            {"op": "connect", "name": "storm-session", "conns": [{**c, "headers": 1} for c in conns(settings.storm)],
             "inflight": settings.inflight, "keep_timings": True},
            {"op": "close", "name": "close-session", "settle": 2.0},
        ]
    spec = {**base_spec(server), "headers": headers, "phases": phases}
    result, marks = run_client(spec, meter, settings.client_timeout)
    ph = result["phases"]
    base_rss = marks["connect-low:start"]["rss"]
    auth = "token" if server.token_auth else "none"
    records = []
    for level, name in ((low, "idle-low"), (high, "idle-high")):
        idle = ph[name]
        side = server_side(marks, name, wall_s=settings.idle_s)
        rss = marks[name + ":start"]["rss"]
        records.append({"scenario": "capacity", "connections": level, "open": idle["open"],
                        "rss_mb": round(rss / 2**20, 1), "baseline_rss_mb": round(base_rss / 2**20, 1),
                        "rss_kib_per_conn": round((rss - base_rss) / level / 1024, 2),
                        "idle_cpu_share": side["server_cpu_share"], "peak_rss_mb": side["peak_rss_mb"],
                        "client_cpu_share": idle["client_cpu_share"]})
    storms = [(auth, [ph["connect-low"], ph["connect-high"]], ["connect-low", "connect-high"])]
    if server.session_auth:
        storms.append(("session", [ph["storm-session"]], ["storm-session"]))
    for kind, parts, names in storms:
        ready = sorted(t for part in parts for t in part["ready_ms_all"])
        wall = sum(part["wall_s"] for part in parts)
        cpu = sum(server_side(marks, n)["server_cpu_s"] for n in names)
        pick = lambda q, ready=ready: round(ready[min(len(ready) - 1, int(q * len(ready)))], 2) if ready else None  # noqa: E731
        records.append({"scenario": "storm", "auth": kind, "attempted": sum(p["attempted"] for p in parts),
                        "opened": len(ready), "failed": sum(p["failed"] for p in parts),
                        "failures": sorted({f for p in parts for f in p["failures"]})[:5],
                        "inflight": settings.inflight, "handshakes_per_s": round(len(ready) / wall, 1),
                        "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": ready[-1] if ready else None,
                        "server_cpu_ms_per_handshake": round(cpu / max(len(ready), 1) * 1e3, 3),
                        "client_cpu_share": max(p["client_cpu_share"] or 0 for p in parts),
                        "ready_on": server.ready_on})
    for r in records:
        r["client_errors"] = result["error_count"]
    return records


def crossworker(server: OursCluster, meter: Meter, settings: Settings) -> list[dict]:
    """1 room x 100 split over the 2 workers; all messages sent from worker 0; latency per worker."""
    members = 100
    conns = [{"target": m % 2, "path": server.path("x1"), "headers": m % len(server.headers()), "room": 0,
              "observer": True, "group": "same" if m % 2 == 0 else "other"} for m in range(members)]
    spec = {**base_spec(server), "phases": [
        {"op": "connect", "name": "connect", "conns": conns, "inflight": settings.inflight},
        {"op": "steps", "name": "cross", "rates": settings.cross_rates, "seconds": settings.cross_s,
         "drain": settings.drain_s, "senders": "first"},
        {"op": "close", "name": "close", "settle": 0.5},
    ]}
    result, marks = run_client(spec, meter, settings.client_timeout)
    records = []
    for step in result["phases"]["cross"]:
        groups = step.pop("groups", {})
        records.append({"scenario": "crossworker", "members": members, **step,
                        "same_worker": groups.get("same"), "other_worker": groups.get("other"),
                        "client_errors": result["error_count"],
                        **server_side(marks, f"cross:{step['step']}", step["delivered"])})
    return records


def usersocket(server: BenchServer, meter: Meter, settings: Settings) -> list[dict]:
    """What user sockets cost a message: 1 room x 100 at a fixed rate, without, then with a user socket each.

    The 100 room sockets join the room by opening it; then each member's user socket
    (/ws/user/) watches it, and every message also becomes a room_state frame for each of
    them. Server CPU per message, at the same offered rate, with and without them.
    """
    members = USER_SOCKET_MEMBERS
    targets, headers = len(server.targets()), len(server.headers())
    rooms = [{"target": m % targets, "path": server.path(USER_SOCKET_ROOM), "headers": m % headers, "room": 0,
              "observer": m < 10} for m in range(members)]
    watchers = [{"target": m % targets, "path": "/ws/user/", "headers": m % headers, "room": 1, "listener": True}
                for m in range(members)]
    seconds = max(2.0, settings.step_s * 2)
    step = {"op": "steps", "rates": [USER_SOCKET_RATE], "seconds": seconds, "drain": settings.drain_s}
    spec = {**base_spec(server), "phases": [
        {"op": "connect", "name": "connect", "conns": rooms, "inflight": settings.inflight},
        *([{**step, "name": "warmup", "seconds": settings.warmup_s}] if settings.warmup_s else []),
        {**step, "name": "plain"},
        {"op": "connect", "name": "connect-watchers", "conns": watchers, "inflight": settings.inflight},
        {**step, "name": "watched"},
        {"op": "close", "name": "close", "settle": settings.pause_s},
    ]}
    result, marks = run_client(spec, meter, settings.client_timeout)
    for name in ("connect", "connect-watchers"):
        if result["phases"][name]["failed"]:
            raise RuntimeError(f"{server.name} usersocket: {result['phases'][name]['failures']}")
    records = []
    for variant in ("plain", "watched"):
        run = result["phases"][variant][0]
        side = server_side(marks, f"{variant}:0", run["delivered"])
        records.append({"scenario": "usersocket", "variant": variant, "members": members,
                        "watchers": members if variant == "watched" else 0, **run, **side,
                        "cpu_us_per_message": round(side["server_cpu_s"] / max(run["sent"], 1) * 1e6, 1),
                        "client_errors": result["error_count"]})
    return records


def _pg_statement_log(cluster, on: bool) -> None:
    """Have PostgreSQL log every statement (on) or none (off), without a restart."""
    import psycopg

    with psycopg.connect(host=HOST, port=cluster.postgres_port, user="postgres", dbname="chat",
                         autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET log_statement = '{'all' if on else 'none'}'")
        conn.execute("SELECT pg_reload_conf()")


def _statements_logged(log_path, offset: int) -> tuple[int, int]:
    """Count the statements PostgreSQL logged after offset: all of them, and those that read messages."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if "statement: " in line]
    reading = [line for line in lines if '"chat_message"' in line and "SELECT" in line.upper()
               and "INSERT" not in line.upper()]
    return len(lines), len(reading)


def reconnect_storm(server: OursCluster, meter: Meter, settings: Settings) -> list[dict]:
    """5,000 clients through nginx on 2 workers; worker 1 restarted; how long until every client has its hello again.

    Each room gets a message first, so every reconnect (`?after=0`) recovers it. The
    database's share: PostgreSQL logs every statement during the storm, counted per reconnect
    (all of them, and those that read messages).
    """
    from bench.servers import ClusterViaNginx

    view = ClusterViaNginx(server)
    targets, headers = len(view.targets()), len(view.headers())
    slugs = [f"c{i}" for i in range(CONN_ROOMS)]
    conns = [{"target": i % targets, "path": view.path(slugs[i % CONN_ROOMS]), "headers": i % headers,
              "room": i % CONN_ROOMS} for i in range(settings.storm)]
    spec = {**base_spec(view), "phases": [
        {"op": "connect", "name": "connect", "conns": conns, "inflight": settings.inflight},
        {"op": "steps", "name": "seed", "rates": [float(CONN_ROOMS)], "seconds": 1.0, "drain": 2.0},
        {"op": "storm", "name": "storm", "resume": "?after=0", "jitter": 1.0, "seconds": 90},
        {"op": "close", "name": "close", "settle": settings.pause_s},
    ]}
    cluster = server.cluster
    counted: dict[str, int] = {}

    log_path = cluster.logs / "postgres.log"

    def restart() -> dict:
        _pg_statement_log(cluster, True)
        time.sleep(0.2)  # the reload reaches every backend
        counted["offset"] = log_path.stat().st_size
        started = time.monotonic()
        cluster.stop_worker(1)  # SIGTERM: the worker drains, its clients get 1012
        stopped = time.monotonic()
        cluster.start_worker(1)
        return {"stop_s": round(stopped - started, 2), "start_s": round(time.monotonic() - stopped, 2)}

    def end() -> None:
        counted["statements"], counted["message_reads"] = _statements_logged(log_path, counted["offset"])
        _pg_statement_log(cluster, False)

    result, marks = run_client(spec, meter, settings.client_timeout, hooks={"storm:restart": restart, "storm:end": end})
    if result["phases"]["connect"]["failed"]:
        raise RuntimeError(f"storm: {result['phases']['connect']['failures']}")
    storm = result["phases"]["storm"]
    hook = marks["storm:restart"]["hook"]
    reconnects = max(storm["back"], 1)
    return [{"scenario": "reconnect", "connections": settings.storm, **storm, **hook,
             "db_statements_per_reconnect": round(counted["statements"] / reconnects, 2),
             "db_message_reads_per_reconnect": round(counted["message_reads"] / reconnects, 2),
             "server_cpu_s": round(marks["storm:end"]["cpu_s"] - marks["storm:start"]["cpu_s"], 2),
             "client_errors": result["error_count"]}]
