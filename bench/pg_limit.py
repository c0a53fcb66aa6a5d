"""The database's own limit: our message statements, driven by nothing but psycopg, in batches.

    .venv/bin/python -m bench.pg_limit [--seconds 3]

Starts a PostgreSQL like the bench cluster's (deploy/cluster.py), migrates it, makes 100
rooms, then stores messages the way the writer does (chat/store/queries.py: one seq bump
per room and one INSERT ... SELECT ... RETURNING, as one simple-protocol query and one
implicit transaction, on a psycopg AsyncConnection) in a tight loop with one batch in
flight, for several batch sizes spread over the 100 rooms. Nothing else runs: no sockets,
no Channels, no rate limit, no broadcast. Messages per second of wall time, and per core
(messages over the CPU of this script plus PostgreSQL's), are the ceiling the chat
server's stored-and-delivered rate can be compared with (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "pg_limit.json"
BATCHES = [1, 10, 50, 200]
ROOMS = 100


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (PostgreSQL's postmaster and backends)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(child.name))
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def drive(conn, room_ids: list[int], user_id: int, batch: int, seconds: float) -> int:
    from django.utils import timezone

    from chat.store import queries

    stored, k, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        groups: dict[int, list] = {}
        for _ in range(batch):
            groups.setdefault(room_ids[k % len(room_ids)], []).append((user_id, f"limit message {k}", None, ""))
            k += 1
        result = await queries.messages_store_async(conn, groups=groups, created=timezone.now())
        stored += sum(map(len, result.values()))
    return stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    from deploy.cluster import Cluster

    rows = []
    with tempfile.TemporaryDirectory(prefix="chat-pg-limit-") as tmp:
        cluster = Cluster(Path(tmp), workers=0)
        try:
            cluster._start_postgres(60)
            cluster.manage("migrate", "--noinput", "--verbosity", "0")
            os.environ.update(cluster.env)
            os.environ["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
            import django

            django.setup()
            import psycopg
            from django.contrib.auth import get_user_model
            from django.db import connection

            from chat.models import Room

            user = get_user_model().objects.create(username="limit")
            room_ids = [Room.objects.create(slug=f"limit-{i}", name=f"limit {i}").pk for i in range(ROOMS)]
            params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
            pg_pid = cluster.postgres.process.pid

            async def run_all():
                conn = await psycopg.AsyncConnection.connect(**params, autocommit=True,
                                                             cursor_factory=psycopg.AsyncClientCursor)
                try:
                    await drive(conn, room_ids, user.pk, 10, 0.5)  # warm up
                    for batch in BATCHES:
                        cpu0, pg0, t0 = time.process_time(), _tree_cpu(pg_pid), time.monotonic()
                        stored = await drive(conn, room_ids, user.pk, batch, args.seconds)
                        wall = time.monotonic() - t0
                        cpu = (time.process_time() - cpu0) + (_tree_cpu(pg_pid) - pg0)
                        rows.append({"batch": batch, "rooms_per_batch": min(batch, ROOMS), "stored": stored,
                                     "msgs_per_s": round(stored / wall), "msgs_per_core_s": round(stored / cpu),
                                     "client_cpu_share": round((time.process_time() - cpu0) / wall, 2)})
                finally:
                    await conn.close()

            asyncio.run(run_all())
        finally:
            cluster.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seconds": args.seconds, "rooms": ROOMS, "rows": rows}, indent=1) + "\n")
    print(f"our message statements on PostgreSQL, one batch in flight, {ROOMS} rooms:")
    print(f"{'batch':>6} {'msgs/s':>9} {'msgs/core-s':>12}")
    for r in rows:
        print(f"{r['batch']:>6} {r['msgs_per_s']:>9,} {r['msgs_per_core_s']:>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
