"""Run the benchmark: start each server, run the scenarios against it, stop it; servers interleaved.

    .venv/bin/python -m bench.run                 # full: 3 repetitions, every scenario (make bench)
    .venv/bin/python -m bench.run --quick         # 1 repetition of the fan-out scenario (make bench-quick)
    .venv/bin/python -m bench.run --servers ours,node --scenarios fanout --reps 1 --out /tmp/r

Order: for each repetition, for each server (ours, naive, bare, node, cluster): start, run the
connection scenarios, stop; start again, run fan-out (and cross-worker), stop. Records go to OUT/<scenario>.json with the run's metadata;
the full run then writes docs/benchmarks.md and its plots (bench/report.py).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import scenarios
from bench.scenarios import QUICK, Settings
from bench.servers import (
    REPO,
    BareDaphne,
    BenchServer,
    ClusterViaNginx,
    Meter,
    NaiveDaphne,
    NodeWs,
    OursCluster,
    OursDaphne,
    workdir,
)

SERVERS = {"ours": OursDaphne, "naive": NaiveDaphne, "bare": BareDaphne, "node": NodeWs, "cluster": OursCluster}
SCENARIOS = ["connections", "fanout", "crossworker", "usersocket", "reconnect"]
# Each block gets a freshly started server: after one scenario, freed heap would absorb the
# next one's connections (hiding their memory) and its peak RSS would carry over.
BLOCKS = [["connections", "reconnect"], ["fanout", "crossworker", "usersocket"]]
RESULTS = REPO / "bench" / "results"
FILES = {"fanout": "fanout", "capacity": "connections", "storm": "connections", "crossworker": "crossworker",
         "usersocket": "usersocket", "reconnect": "reconnect"}


def log(message: str) -> None:
    """Print a progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_on(server: BenchServer, names: list[str], settings: Settings, rep: int, nginx: bool) -> list[dict]:
    """Run the applicable scenarios against one started server (and its nginx view for the cluster)."""
    views: list[BenchServer] = [server]
    if isinstance(server, OursCluster) and nginx:
        views.append(ClusterViaNginx(server))
    records: list[dict] = []
    for view in views:
        meter = Meter(view)
        try:
            for name in sorted(names, key=SCENARIOS.index):
                settle(meter)
                if name == "fanout":
                    for rooms, members in settings.shapes:
                        log(f"rep {rep} {view.name}: fanout {rooms}x{members}")
                        records += scenarios.fanout(view, meter, settings, rooms, members)
                elif name == "connections" and view is server:
                    log(f"rep {rep} {view.name}: connections")
                    records += scenarios.connections(view, meter, settings)
                elif name == "crossworker" and isinstance(view, OursCluster):
                    log(f"rep {rep} {view.name}: crossworker")
                    records += scenarios.crossworker(view, meter, settings)
                elif name == "reconnect" and view is server and isinstance(view, OursCluster):
                    log(f"rep {rep} {view.name}: reconnect storm")
                    records += scenarios.reconnect_storm(view, meter, settings)
                elif name == "usersocket" and view is server and view.name in ("ours", "cluster"):
                    log(f"rep {rep} {view.name}: usersocket")
                    records += scenarios.usersocket(view, meter, settings)
        finally:
            meter.close()
        for r in records:
            r.setdefault("server", view.name)
            r.setdefault("label", view.label)
            r.setdefault("rep", rep)
    return records


def source_hash() -> str:
    """Fingerprint the server code as it is on disk (chat/, chatproject/): others edit it between commits."""
    digest = hashlib.sha1()
    for path in sorted([*REPO.glob("chat/**/*.py"), *REPO.glob("chatproject/*.py")]):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def settle(meter: Meter, busy: float = 0.05, cap_s: float = 30.0) -> None:
    """Wait until the server is idle (start-up done, a previous phase's closes handled)."""
    deadline = time.monotonic() + cap_s
    before = meter.snapshot()["cpu_s"]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = meter.snapshot()["cpu_s"]
        if now - before <= busy * 0.5:
            return
        before = now


def metadata(args: argparse.Namespace, settings: Settings, started: float, partial: bool = False) -> dict:
    """Describe the run: when, which commit, which machine, which settings."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else None
    return {
        "run_id": datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "git": rev + ("+dirty" if dirty else ""),
        "source_hash_start": args.source_hash,
        "source_hash_end": source_hash(),
        "python": platform.python_version(),
        "node": node,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "reps": args.reps,
        "servers": args.servers,
        "scenarios": args.scenarios,
        "settings": {k: v for k, v in vars(settings).items()},
        "duration_s": round(time.time() - started, 1),
        "complete": not partial,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the plan, write the results (and the report for a full run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition of the fan-out scenario, short steps")
    parser.add_argument("--servers", default=None, help="comma list of " + ",".join(SERVERS))
    parser.add_argument("--scenarios", default=None, help="comma list of " + ",".join(SCENARIOS))
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--no-nginx", action="store_true", help="skip the cluster's via-nginx fan-out variant")
    parser.add_argument("--out", default=None, help="results directory (default bench/results, quick: bench/results/quick)")
    parser.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--tiny", action="store_true", help="smoke test: 1 room x 5, one slow step (tests/bench)")
    args = parser.parse_args(argv)
    if args.tiny:
        settings = Settings(ladder=[50], step_s=0.5, closed_s=0.5, drain_s=1.0, shapes=[(1, 5)], warmup_s=0.0)
    elif args.quick:
        settings = QUICK
    else:
        settings = Settings()
    args.servers = (args.servers or ("ours,naive,node" if args.quick or args.tiny else ",".join(SERVERS))).split(",")
    args.scenarios = (args.scenarios or ("fanout,usersocket" if args.quick or args.tiny else ",".join(SCENARIOS))).split(",")
    args.reps = args.reps or (1 if args.quick or args.tiny else 3)
    out = Path(args.out) if args.out else (RESULTS / "quick" if args.quick or args.tiny else RESULTS)
    unknown = set(args.servers) - set(SERVERS) | set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every server we start
    started = time.time()
    args.source_hash = source_hash()
    records: list[dict] = []
    slugs = scenarios.all_slugs(settings)
    for rep in range(1, args.reps + 1):
        for name in args.servers:
            for block in BLOCKS:
                names = [n for n in block if n in args.scenarios]
                if not names:
                    continue
                server, files = SERVERS[name](), workdir(name)
                log(f"rep {rep}: starting {name} for {', '.join(names)}")
                try:
                    server.start(files, slugs)
                    records += run_on(server, names, settings, rep, nginx=not args.no_nginx)
                finally:
                    server.stop()
                    shutil.rmtree(files, ignore_errors=True)
            write_results(out, metadata(args, settings, started, partial=True), records)  # a crash keeps these
    meta = metadata(args, settings, started)
    write_results(out, meta, records)
    log(f"done in {meta['duration_s']} s; results in {out}")
    if not args.quick and not args.tiny and not args.no_report:
        from bench import report

        # The database's own ceiling for the report's physical-limit line (bench/pg_limit.py).
        log("physical limit: our statements on PostgreSQL from a bare psycopg loop")
        subprocess.run([sys.executable, "-m", "bench.pg_limit", "--out", str(out / "pg_limit.json")], cwd=REPO,
                       check=True)

        report.main(["--results", str(out)])
    else:
        from bench import report

        print(report.quick_table(records))
    return 0


def write_results(out: Path, meta: dict, records: list[dict]) -> None:
    """Write one JSON file per scenario file name, each with the run's metadata."""
    out.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[dict]] = {}
    for r in records:
        by_file.setdefault(FILES[r["scenario"]], []).append(r)
    for name, rows in by_file.items():
        (out / f"{name}.json").write_text(json.dumps({"meta": meta, "records": rows}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
