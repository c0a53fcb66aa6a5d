"""Turn bench/results/*.json into docs/benchmarks.md: tables (median [min-max] of the repetitions,
ratio of ours to the Node ws server) and plots of latency against delivered rate.

    .venv/bin/python -m bench.report [--results bench/results] [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.scenarios import USER_SOCKET_MEMBERS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "benchmarks.md"
ORDER = ["ours", "cluster", "cluster-nginx", "naive", "bare", "node"]
REFERENCE = "node"
OURS = {"ours", "cluster", "cluster-nginx"}


# --- aggregation -----------------------------------------------------------------------


def load(results: Path) -> tuple[dict, list[dict]]:
    """Read every scenario file of a results directory; return (metadata, records)."""
    meta, records = {}, []
    for name in ("fanout", "connections", "crossworker", "usersocket", "reconnect"):
        path = results / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            meta = meta or data["meta"]
            records += [{**r, "run_id": data["meta"]["run_id"]} for r in data["records"]]
    return meta, records


def runs_of(records: list[dict]) -> str:
    """Name the run(s) a section's figures come from."""
    return ", ".join(f"`{r}`" for r in sorted({r.get("run_id", "?") for r in records}))


def spread(values: Iterable[float | None]) -> tuple[float, float, float] | None:
    """Return (median, min, max) of the values that exist, or None."""
    vs = [v for v in values if v is not None]
    return (statistics.median(vs), min(vs), max(vs)) if vs else None


def fmt(x: float | None, digits: int | None = None) -> str:
    """Format a number compactly: thousands separators for large ones, a few digits for small."""
    if x is None:
        return "–"
    if digits is None:
        digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    return f"{x:,.{digits}f}"


def cell(s: tuple[float, float, float] | None, digits: int | None = None) -> str:
    """Format median [min–max]."""
    if s is None:
        return "–"
    med, lo, hi = s
    return f"{fmt(med, digits)} [{fmt(lo, digits)}–{fmt(hi, digits)}]" if lo != hi else fmt(med, digits)


def pct(s: tuple[float, float, float] | None) -> str:
    """Format a loss fraction's median [min–max] as percent."""
    return cell(tuple(x * 100 for x in s), 2) + " %" if s else "–"


def ratio(ours: tuple | None, ref: tuple | None) -> str:
    """Format ours / reference of the medians."""
    if not ours or not ref or not ref[0]:
        return "–"
    return f"{ours[0] / ref[0]:.2g}×" if ours[0] / ref[0] < 10 else f"{ours[0] / ref[0]:.0f}×"


def by(records: list[dict], **match) -> list[dict]:
    """Return the records whose fields equal the given values."""
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def servers_in(records: list[dict]) -> list[str]:
    """Return the servers present, in report order."""
    present = {r["server"] for r in records}
    return [s for s in ORDER if s in present] + sorted(present - set(ORDER))


def labels(records: list[dict]) -> dict[str, str]:
    """Map server names to their labels."""
    return {r["server"]: r.get("label", r["server"]) for r in records}


def fanout_rep(rows: list[dict]) -> dict:
    """Summarise one repetition of one fan-out shape on one server."""
    steps = sorted((r for r in rows if r["mode"] == "open"), key=lambda r: r["step"])
    closed = next((r for r in rows if r["mode"] == "closed"), None)
    ok = [r for r in steps if not r.get("saturated")]
    best = ok[-1] if ok else None
    peak = max([r["delivered_per_s"] for r in steps] + ([closed["delivered_per_s"]] if closed else []))
    # The step nearest half the peak (on the ladder's log scale): the "half of saturation" figure.
    half = min(steps, key=lambda r: abs(math.log(r["offered_deliveries_per_s"] / (peak / 2))), default=None)
    return {
        "peak": peak,
        "sustained": best["delivered_per_s"] if best else None,
        "p50": best["p50_ms"] if best else None,
        "p99": best["p99_ms"] if best else None,
        "max": best["max_ms"] if best else None,
        "cpu": closed["cpu_us_per_delivery"] if closed else None,
        "cpu_sustained": best.get("cpu_us_per_delivery") if best else None,
        "closed_p99": closed["p99_ms"] if closed else None,
        "half_rate": half["offered_deliveries_per_s"] if half else None,
        "half_p99": half["p99_ms"] if half else None,
        "rss": max(r["peak_rss_mb"] for r in rows),
        "loss": max((r["loss"] or 0) for r in ok) if ok else None,
        "client": max(r["client_cpu_share"] for r in rows),
        "client_bound": any(r.get("client_bound") for r in rows),
        "busy": max(r.get("machine_busy_cores", 0) for r in rows),
    }


def group_reps(rows: list[dict], summarise: Callable[[list[dict]], dict]) -> dict[str, tuple | bool | None]:
    """Summarise each repetition, then take median/min/max of every numeric field."""
    reps = {}
    for r in rows:
        reps.setdefault(r["rep"], []).append(r)
    sums = [summarise(v) for _, v in sorted(reps.items())]
    out: dict[str, tuple | bool | None] = {}
    for key in sums[0] if sums else []:
        values = [s[key] for s in sums]
        out[key] = any(values) if isinstance(values[0], bool) else spread(values)
    out["reps"] = len(sums)
    return out


# --- tables ------------------------------------------------------------------------------


def fanout_tables(records: list[dict]) -> list[str]:
    """Markdown tables of the fan-out scenario, one per room shape."""
    fan = by(records, scenario="fanout")
    names = labels(records)
    lines: list[str] = []
    for shape in sorted({r["shape"] for r in fan}, key=lambda s: int(s.split("x")[0])):
        rows = by(fan, shape=shape)
        lines += [
            f"#### Fan-out {shape.replace('x', ' room(s) × ')} members",
            "",
            "| server | peak delivered/s | sustained delivered/s | p50 ms | p99 ms | max ms | CPU-µs/delivery (closed loop) "
            "| CPU-µs/delivery (sustained step) | peak RSS MB | loss (unsaturated steps) | client CPU (max) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        agg = {s: group_reps(by(rows, server=s), fanout_rep) for s in servers_in(rows)}
        keys = ["peak", "sustained", "p50", "p99", "max", "cpu", "cpu_sustained", "rss"]
        for s, a in agg.items():
            flag = " **client-bound**" if a["client_bound"] else ""
            client = a["client"]
            lines.append(f"| {names[s]} | " + " | ".join(cell(a[k]) for k in keys)
                         + f" | {pct(a['loss'])} | {fmt(client[0] * 100 if client else None, 0)}%{flag} |")
        if REFERENCE in agg:
            for s in (x for x in agg if x in OURS):
                lines.append(f"| *{s} / node* | " + " | ".join(ratio(agg[s][k], agg[REFERENCE][k]) for k in keys)
                             + " | | |")
        lines.append("")
    return lines


def headline(records: list[dict]) -> list[str]:
    """One table of the main figures per server: 1 room x 100 fan-out, 5k idle connections, storm."""
    names = labels(records)
    fan = by(records, scenario="fanout", shape="1x100")
    cap = [r for r in by(records, scenario="capacity") if r["connections"] == max(x["connections"] for x in
                                                                                   by(records, scenario="capacity"))] \
        if by(records, scenario="capacity") else []
    storm = by(records, scenario="storm")
    low = min((r["offered_deliveries_per_s"] for r in fan if r["mode"] == "open"), default=0)
    rows = ["| server | delivered/s (peak, 1×100) | CPU-µs/delivery (closed loop, 1×100) "
            f"| p99 ms at the first step (~{fmt(low, 0)}/s, 1×100) | p99 ms (sustained, 1×100) "
            "| RSS KiB/connection (idle) | handshakes/s (storm, token or none) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    figures: dict[str, list] = {}
    for s in servers_in(records):
        f = group_reps(by(fan, server=s), fanout_rep) if by(fan, server=s) else {}
        c = spread(r["rss_kib_per_conn"] for r in by(cap, server=s))
        st = spread(r["handshakes_per_s"] for r in by(storm, server=s) if r["auth"] in ("token", "none"))
        first = spread(r["p99_ms"] for r in by(fan, server=s, mode="open", step=0))
        figures[s] = [f.get("peak"), f.get("cpu"), first, f.get("p99"), c, st]
        rows.append(f"| {names[s]} | " + " | ".join(cell(x) for x in figures[s]) + " |")
    if REFERENCE in figures:
        for s in (x for x in figures if x in OURS | {"naive", "bare"}):
            rows.append(f"| *{s} / node* | " + " | ".join(ratio(a, b) for a, b in zip(figures[s], figures[REFERENCE], strict=True))
                        + " |")
    return rows + [""]


def targets(records: list[dict]) -> list[str]:
    """The issue's targets, each computed from this run's medians, with whether it is met."""
    rows = ["| target | figure | ours | Node `ws` | ratio | wanted | met |", "| --- | --- | --- | --- | --- | --- | --- |"]

    def add(target: str, figure: str, ours, ref, wanted: str, ok: bool | None, as_ratio: bool = True) -> None:
        met = "–" if ok is None else "yes" if ok else "**no**"
        rows.append(f"| {target} | {figure} | {cell(ours)} | {cell(ref)} | {ratio(ours, ref) if as_ratio else ''} "
                    f"| {wanted} | {met} |")

    def quotient(a, b) -> float | None:
        return a[0] / b[0] if a and b and b[0] else None

    fan = by(records, scenario="fanout")
    # Issue #15: many small rooms, one Daphne and the cluster, within 2x Node's CPU per delivery.
    for server in ("ours", "cluster"):
        ours = group_reps(by(fan, server=server, shape="100x10"), fanout_rep) if by(fan, server=server, shape="100x10") else {}
        ref = group_reps(by(fan, server=REFERENCE, shape="100x10"), fanout_rep) if by(fan, server=REFERENCE, shape="100x10") else {}
        if ours and ref:
            q = quotient(ours["cpu"], ref["cpu"])
            add(f"fan-out 100×10, {server}", "CPU-µs/delivery, closed loop", ours["cpu"], ref["cpu"], "≤ 2×",
                None if q is None else q <= 2)
            add(f"fan-out 100×10, {server}", "peak delivered/s (messages/s = this / 10)", ours["peak"], ref["peak"],
                "≥ 100,000 (10,000 msgs/s)", None if not ours["peak"] else ours["peak"][0] >= 100_000, as_ratio=False)
    for shape in ("1x100", "10x50"):
        ours = group_reps(by(fan, server="cluster", shape=shape), fanout_rep) if by(fan, server="cluster", shape=shape) else {}
        ref = group_reps(by(fan, server=REFERENCE, shape=shape), fanout_rep) if by(fan, server=REFERENCE, shape=shape) else {}
        if not ours or not ref:
            continue
        name = f"fan-out {shape.replace('x', '×')}, cluster"
        q = quotient(ours["peak"], ref["peak"])
        add(name, "peak delivered/s", ours["peak"], ref["peak"], "≥ 0.5×", None if q is None else q >= 0.5)
        q = quotient(ours["cpu"], ref["cpu"])
        add(name, "CPU-µs/delivery, closed loop", ours["cpu"], ref["cpu"], "≤ 2×", None if q is None else q <= 2)
        rate = ours["half_rate"]
        add(name, f"p99 ms at the step nearest half our peak (~{fmt(rate[0] if rate else None, 0)}/s)",
            ours["half_p99"], None, "< 50 ms", None if not ours["half_p99"] else ours["half_p99"][0] < 50, as_ratio=False)
    cap = by(records, scenario="capacity")
    if cap:
        top = max(r["connections"] for r in cap)
        ref = spread(r["rss_kib_per_conn"] for r in by(cap, server=REFERENCE, connections=top))
        for s in ("ours", "cluster"):
            ours = spread(r["rss_kib_per_conn"] for r in by(cap, server=s, connections=top))
            if ours and ref:
                add(f"idle connections ({s})", f"RSS KiB per connection at {top:,}", ours, ref, "≤ 2×",
                    quotient(ours, ref) <= 2)
    storm = by(records, scenario="storm")
    ref = spread(r["handshakes_per_s"] for r in by(storm, server=REFERENCE))
    for s, auth in (("ours", "token"), ("ours", "session"), ("cluster", "token")):
        ours = spread(r["handshakes_per_s"] for r in by(storm, server=s, auth=auth))
        if ours and ref:
            add(f"handshakes ({s}, {auth} auth)", "handshakes/s", ours, ref, "≥ 0.5×", quotient(ours, ref) >= 0.5)
    bare = spread(r["handshakes_per_s"] for r in by(storm, server="bare"))
    if bare and ref:
        add("(floor: stock Daphne, no auth)", "handshakes/s", bare, ref, "", None)
    # Issue #15: against stock Daphne itself (bare), in the same run.
    for auth, wanted in (("token", 1.0), ("session", 0.75)):
        ours = spread(r["handshakes_per_s"] for r in by(storm, server="ours", auth=auth))
        if ours and bare:
            q = quotient(ours, bare)
            rows.append(f"| handshakes (ours, {auth} auth) vs stock Daphne | handshakes/s | {cell(ours)} "
                        f"| bare: {cell(bare)} | {q:.2f}× bare | ≥ {wanted}× bare | {'yes' if q >= wanted else '**no**'} |")
    for r in by(records, scenario="reconnect"):
        rows.append(f"| reconnect storm ({r['connections']:,} via nginx, worker 1 restarted) | all {r['back']:,} lost "
                    f"clients back, s | {fmt(r['all_back_s'])} | | | (measured) | – |")
        rows.append(f"| reconnect storm | statements per reconnect (message reads) | "
                    f"{fmt(r['db_statements_per_reconnect'])} ({fmt(r['db_message_reads_per_reconnect'])}) | | "
                    f"| ≤ 1 message read | {'yes' if r['db_message_reads_per_reconnect'] <= 1 else '**no**'} |")
    for shape in ("1x100", "10x50", "100x10"):
        ours = group_reps(by(fan, server="ours", shape=shape), fanout_rep) if by(fan, server="ours", shape=shape) else {}
        naive = group_reps(by(fan, server="naive", shape=shape), fanout_rep) if by(fan, server="naive", shape=shape) else {}
        if ours and naive and ours["cpu"] and naive["cpu"]:
            q = quotient(naive["cpu"], ours["cpu"])
            rows.append(f"| ours vs naive Channels, {shape.replace('x', '×')} | CPU-µs/delivery, closed loop "
                        f"| {cell(ours['cpu'])} | naive: {cell(naive['cpu'])} | naive/ours {q:.0f}× | ≥ 3× "
                        f"| {'yes' if q >= 3 else '**no**'} |")
    return rows + [""]


def capacity_tables(records: list[dict]) -> list[str]:
    """Markdown tables of idle capacity and connect storms."""
    names = labels(records)
    cap = by(records, scenario="capacity")
    lines = ["| server | connections | RSS KiB/connection | idle server CPU (% of a core) | server RSS MB |",
             "| --- | --- | --- | --- | --- |"]
    aggs: dict[tuple[str, int], dict] = {}
    for s in servers_in(cap):
        for level in sorted({r["connections"] for r in cap}):
            rows = by(cap, server=s, connections=level)
            a = group_reps(rows, lambda v: {"kib": v[0]["rss_kib_per_conn"], "cpu": v[0]["idle_cpu_share"] * 100,
                                            "rss": v[0]["rss_mb"], "open": v[0]["open"]})
            aggs[(s, level)] = a
            lines.append(f"| {names[s]} | {level:,} (open: {fmt(a['open'][1] if a['open'] else None, 0)}) | "
                         f"{cell(a['kib'])} | {cell(a['cpu'])} | {cell(a['rss'])} |")
    for s in (x for x in servers_in(cap) if x in OURS):
        for level in sorted({r["connections"] for r in cap}):
            if (REFERENCE, level) in aggs:
                a, ref = aggs[(s, level)], aggs[(REFERENCE, level)]
                lines.append(f"| *{s} / node* | {level:,} | {ratio(a['kib'], ref['kib'])} | {ratio(a['cpu'], ref['cpu'])} "
                             f"| {ratio(a['rss'], ref['rss'])} |")
    storm = by(records, scenario="storm")
    lines += ["", "Connect storm (5,000 handshakes, 100 in flight; a handshake ends at our `hello` frame, at the 101 for "
              "servers that send no first frame):", "",
              "| server | auth | handshakes/s | p50 ms | p99 ms | max ms | server CPU ms/handshake | failed |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    sag: dict[tuple[str, str], dict] = {}
    for s in servers_in(storm):
        for auth in sorted({r["auth"] for r in by(storm, server=s)}):
            rows = by(storm, server=s, auth=auth)
            a = group_reps(rows, lambda v: {"hs": v[0]["handshakes_per_s"], "p50": v[0]["p50_ms"], "p99": v[0]["p99_ms"],
                                            "max": v[0]["max_ms"], "cpu": v[0]["server_cpu_ms_per_handshake"],
                                            "failed": v[0]["failed"]})
            sag[(s, auth)] = a
            lines.append(f"| {names[s]} | {auth} | {cell(a['hs'])} | {cell(a['p50'])} | {cell(a['p99'])} | "
                         f"{cell(a['max'])} | {cell(a['cpu'])} | {cell(a['failed'], 0)} |")
    ref = sag.get((REFERENCE, "none"))
    for (s, auth), a in sag.items():
        if s in OURS and ref:
            lines.append(f"| *{s} / node* | {auth} | {ratio(a['hs'], ref['hs'])} | {ratio(a['p50'], ref['p50'])} | "
                         f"{ratio(a['p99'], ref['p99'])} | | {ratio(a['cpu'], ref['cpu'])} | |")
    return lines + [""]


def crossworker_table(records: list[dict]) -> list[str]:
    """Markdown table of the cross-worker latency scenario."""
    rows = by(records, scenario="crossworker")
    if not rows:
        return ["(not run)", ""]
    lines = ["| offered deliveries/s | delivered/s | same worker p50 / p99 ms | other worker p50 / p99 ms | "
             "CPU-µs/delivery (2 workers + Redis + PostgreSQL) |", "| --- | --- | --- | --- | --- |"]
    for step in sorted({r["step"] for r in rows}):
        a = group_reps(by(rows, step=step), lambda v: {
            "off": v[0]["offered_deliveries_per_s"], "del": v[0]["delivered_per_s"],
            "s50": (v[0]["same_worker"] or {}).get("p50_ms"), "s99": (v[0]["same_worker"] or {}).get("p99_ms"),
            "o50": (v[0]["other_worker"] or {}).get("p50_ms"), "o99": (v[0]["other_worker"] or {}).get("p99_ms"),
            "cpu": v[0].get("cpu_us_per_delivery")})
        lines.append(f"| {cell(a['off'])} | {cell(a['del'])} | {cell(a['s50'])} / {cell(a['s99'])} | "
                     f"{cell(a['o50'])} / {cell(a['o99'])} | {cell(a['cpu'])} |")
    return lines + [""]


def quick_table(records: list[dict]) -> str:
    """Return a plain-text summary of fan-out records (make bench-quick prints it)."""
    lines = [f"{'server':14} {'shape':7} {'peak/s':>9} {'sust/s':>9} {'p50ms':>8} {'p99ms':>8} {'cpu-us/d':>9} "
             f"{'rss MB':>7} {'client':>7}"]
    fan = by(records, scenario="fanout")
    for shape in sorted({r["shape"] for r in fan}, key=lambda s: int(s.split("x")[0])):
        for s in servers_in(by(fan, shape=shape)):
            a = fanout_rep(by(fan, shape=shape, server=s))
            lines.append(f"{s:14} {shape:7} {fmt(a['peak'], 0):>9} {fmt(a['sustained'], 0):>9} {fmt(a['p50']):>8} "
                         f"{fmt(a['p99']):>8} {fmt(a['cpu']):>9} {fmt(a['rss']):>7} "
                         f"{a['client'] * 100:>6.0f}%{' CLIENT-BOUND' if a['client_bound'] else ''}")
    return "\n".join(lines + usersocket_table(records))


def physical_limit(path: Path | None) -> list[str]:
    """The database's ceiling: our statements from a bare psycopg loop (bench/pg_limit.py)."""
    if path is None or not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = ["## Physical limit (PostgreSQL)", "",
             "Our message statements (seq bumps and the INSERT, one implicit transaction per batch, one batch",
             f"in flight) from a bare psycopg loop over {data['rooms']} rooms, nothing else running",
             "(`bench/pg_limit.py`). Stored-and-delivered rates above can be read against it.", "",
             "| batch | messages/s | messages per core-second (script + PostgreSQL) |", "| --- | --- | --- |"]
    lines += [f"| {r['batch']} | {r['msgs_per_s']:,} | {r['msgs_per_core_s']:,} |" for r in data["rows"]]
    return lines + [""]


def usersocket_table(records: list[dict]) -> list[str]:
    """What a joined member's user socket adds to a message: server CPU-µs per message, without and with."""
    rows = by(records, scenario="usersocket")
    if not rows:
        return []
    lines = ["", "user sockets (1 room x 100 members, a fixed rate; CPU-us per message):",
             f"{'server':14} {'members':>7} {'watchers':>8} {'msgs':>6} {'delivered':>9} {'room_state':>10} "
             f"{'cpu-us/msg':>10} {'p99ms':>8}"]
    for s in servers_in(rows):
        for variant in ("plain", "watched"):
            for r in by(rows, server=s, variant=variant):
                lines.append(f"{s:14} {r['members']:>7} {r['watchers']:>8} {r['sent']:>6} {r['delivered']:>9} "
                             f"{r['listened']:>10} {fmt(r['cpu_us_per_message']):>10} {fmt(r['p99_ms']):>8}")
        plain = [r["cpu_us_per_message"] for r in by(rows, server=s, variant="plain")]
        watched = [r["cpu_us_per_message"] for r in by(rows, server=s, variant="watched")]
        if plain and watched:
            extra = statistics.median(watched) - statistics.median(plain)
            lines.append(f"{s:14} user sockets add {extra:.1f} CPU-us per message, "
                         f"{extra / USER_SOCKET_MEMBERS:.2f} per watching socket")
    return lines


# --- plots -------------------------------------------------------------------------------


def plots(records: list[dict], outdir: Path) -> list[Path]:
    """Plot p50/p99 latency against delivered rate (open-loop steps) per room shape; return the PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    names = labels(records)
    fan = by(records, scenario="fanout", mode="open")
    paths = []
    for shape in sorted({r["shape"] for r in fan}, key=lambda s: int(s.split("x")[0])):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for i, s in enumerate(servers_in(by(fan, shape=shape))):
            rows = by(fan, shape=shape, server=s)
            color = f"C{i}"
            points = []
            for step in sorted({r["step"] for r in rows}):
                at = by(rows, step=step)
                points.append((statistics.median(r["delivered_per_s"] for r in at),
                               statistics.median(r["p50_ms"] for r in at if r["p50_ms"] is not None),
                               statistics.median(r["p99_ms"] for r in at if r["p99_ms"] is not None)))
            xs, p50, p99 = zip(*points, strict=True)
            ax.plot(xs, p99, "-o", color=color, label=f"{names[s]} p99")
            ax.plot(xs, p50, "--", color=color, alpha=0.6, label=f"{names[s]} p50")
            ax.scatter([r["delivered_per_s"] for r in rows], [r["p99_ms"] for r in rows], color=color, s=8, alpha=0.35)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("delivered messages/s (open-loop steps)")
        ax.set_ylabel("end-to-end latency, ms")
        ax.set_title(f"Fan-out {shape} (rooms x members): latency against delivered rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = outdir / f"latency-{shape}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# --- the document ------------------------------------------------------------------------

METHOD = """\
## Method

- **Load client** (`bench/loadclient.py`): one separate process, asyncio (uvloop) protocols, the
  HTTP upgrade written by hand, client frames masked with a precomputed XOR, received frames never
  JSON-decoded: a delivery is a text frame holding the phase's marker, and observer connections
  (up to 10 per room, at most ~200) read the send time (`time.monotonic_ns`, system-wide on Linux)
  embedded in the message body right after it. It sends our protocol's
  `{"type":"message","body":...}` frame to every server; the Node server relays it verbatim, the
  naive consumer re-encodes `{"type":"message","body":...}`, ours broadcasts its full `message`
  object (and acks the sender). Its CPU share is reported; over 90% of a core flags the run
  **client-bound**.
- **Servers**, each started and stopped by the harness on 127.0.0.1, plain ws, compression off
  (`CHAT_WS_COMPRESSION=0`), rate limits and the per-user connection cap lifted:
  ours as one Daphne (`python -m chatproject.server`: SQLite, in-memory layer); ours as the
  cluster (`deploy/cluster.py`: 2 Daphne workers + Redis pub/sub layer + PostgreSQL, connections
  spread over the workers' plain ports), and the same cluster through nginx (wss with the
  cluster's certificate; TLS costs client and nginx CPU); the Channels tutorial consumer
  (`bench/naive_asgi.py`, `ws/naive/<room>/`, on the same Daphne, served through `CHAT_ASGI_APP`);
  the classic Node `ws` broadcast server (`bench/peers/ws_server.js`, `bufferutil`, listen
  backlog 1024 like ours); and the floor, stock Daphne serving a 30-line raw ASGI relay
  (`bench/bare_asgi.py`: no Django, Channels, auth or storage), which shows what Twisted,
  autobahn and Daphne cost before any of our code runs.
- **Server CPU** is utime+stime (+ reaped children) of every process of the server and all its
  descendants (Redis, PostgreSQL backends, nginx workers) from `/proc/<pid>/stat`, between the
  client's marks (10 ms clock ticks). **RSS** is the summed VmRSS sampled every 0.25 s; the peak
  is per phase.
- **Fan-out**: rooms × members of 1×100, 10×50 and 100×10; every member is a receiver (the sender
  included, as all servers echo to the sender). Open-loop steps of rising offered load
  (deliveries/s; each step's message rate is that / room size, spread round robin over the rooms,
  sent from random members), stopped at the first saturated step (an observer saw > 1 s, p99
  > 500 ms, loss > 1% or delivered < 80% of offered); then one closed-loop run (one sender per
  room keeps a window of messages in flight: 32 per room for 1 room, ceil(32/rooms) otherwise).
  *Peak* = the highest delivered rate of any step or the closed loop; *sustained* = the highest
  unsaturated step, whose latencies are shown; CPU-µs/delivery from the closed loop (saturation,
  fixed costs amortised) and from the sustained step.
- **Capacity**: 1,000 then 5,000 idle connections over 100 rooms (token auth for ours, one bench
  user, so presence broadcasts do not dominate); RSS per connection against the RSS before the
  first connection, and idle server CPU over 5 s.
- **Connect storm**: the 5,000 capacity handshakes, 100 in flight (token auth for ours), and for
  ours a second 5,000 with the session cookie of one login (`/accounts/login/`). Ours counts a
  handshake done at its `hello` frame (authentication, room lookup, presence and the history
  snapshot included); the others at the HTTP 101.
- **Cross-worker** (cluster only): 1 room × 100 members split over the 2 workers, every message
  sent from a member on worker 0; latency of observers on the sender's worker and on the other.
- Repetitions interleave the servers (ours, naive, bare, node, cluster). Each server is started fresh
  for the connection scenarios and again for fan-out (+ cross-worker), and the harness waits for
  it to go idle before each scenario; the nginx view runs right after the direct cluster on the
  same processes. Tables show median [min–max] over repetitions; *ours / node* divides medians.
- **Not measured**: Socket.IO (skipped); the nginx view runs the fan-out scenario only (no
  capacity or storm through nginx); session auth only on the single Daphne (the cluster's
  workers redirect plain-HTTP pages to HTTPS); the load client is one process (a client-bound
  phase is flagged, not split over two processes).
"""


def findings() -> list[str]:
    """Return the hand-written section on what the profiles showed (bench/FINDINGS.md)."""
    path = REPO / "bench" / "FINDINGS.md"
    return path.read_text().rstrip("\n").splitlines() + [""] if path.exists() else []


def document(meta: dict, records: list[dict], pngs: list[Path], doc: Path) -> str:
    """Render docs/benchmarks.md."""
    rel = lambda p: os.path.relpath(p, doc.parent)  # noqa: E731
    s = meta.get("settings", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`, then `bench/report.py`) from `bench/results/*.json`;",
        "do not edit by hand: re-run `make bench` (about 30 minutes on 2 cores) or `.venv/bin/python -m bench.report`.",
        "`make bench-quick` (one fan-out repetition, under a minute) prints its own table and writes",
        "`bench/results/quick/`; none of its figures are in this document.",
        "",
        f"**Figures from run `{meta.get('run_id')}`** unless a section names another ({meta.get('mode')} mode, "
        f"{meta.get('reps')} repetitions, git `{meta.get('git')}`, Python {meta.get('python')}, Node "
        f"{meta.get('node')}, {meta.get('cpus')} CPUs, {meta.get('machine')}; took {meta.get('duration_s')} s; "
        f"server code fingerprint {meta.get('source_hash_start')} at the start, {meta.get('source_hash_end')} at the "
        f"end{'' if meta.get('source_hash_start') == meta.get('source_hash_end') else ': CHANGED DURING THE RUN'}). "
        f"Step length {s.get('step_s')} s, closed loop {s.get('closed_s')} s, offered ladder "
        f"{', '.join(f'{x:,}' for x in s.get('ladder', []))} deliveries/s.",
        "",
        "Caveat: a 2-core machine runs the server, the load client and (for the cluster) Redis and",
        "PostgreSQL at once, so delivered rates and latencies depend on what else runs; CPU-µs per",
        "delivery is the steadier figure. `machine_busy_cores` in the JSON records how busy the whole",
        "machine was during each phase (other work included).",
        "",
        "## Headline",
        "",
        "Median [min–max] over the repetitions; the *x / node* rows divide medians.",
        "",
        *headline(records),
        "## Targets (computed)",
        "",
        "The issue's targets against this run's medians; *met* is computed, not written by hand.",
        "",
        *targets(records),
        *findings(),
        "## Fan-out",
        "",
        f"Run {runs_of(by(records, scenario='fanout'))}.",
        "",
    ]
    lines += fanout_tables(records)
    for p in pngs:
        lines += [f"![latency against delivered rate, {p.stem}]({rel(p)})", ""]
    conn = [r for r in records if r["scenario"] in ("capacity", "storm")]
    lines += ["## Connection capacity and connect storm", "", f"Run {runs_of(conn)}.", ""] + capacity_tables(records)
    cross = by(records, scenario="crossworker")
    lines += ["## Cross-worker latency (cluster)", "", f"Run {runs_of(cross)}.", ""] + crossworker_table(records)
    limit_file = Path(meta.get("results_dir", "")) / "pg_limit.json" if meta.get("results_dir") else None
    lines += physical_limit(limit_file)
    users = by(records, scenario="usersocket")
    if users:
        lines += ["## User sockets", "", f"Run {runs_of(users)}.", "", "```", *usersocket_table(records)[1:], "```", ""]
    busy = [r.get("machine_busy_cores") for r in records if r.get("machine_busy_cores") is not None]
    bound = sorted({f"{r['server']} {r.get('shape', r['scenario'])}" for r in records if r.get("client_bound")})
    lines += [
        "## Run notes (computed)",
        "",
        f"- Machine busy cores during measured phases: median {fmt(statistics.median(busy)) if busy else '–'}, "
        f"max {fmt(max(busy)) if busy else '–'} (of {meta.get('cpus')}).",
        f"- Client-bound phases: {', '.join(bound) if bound else 'none'}.",
        f"- Client errors (unexpected closes) summed over records: {sum(r.get('client_errors', 0) for r in records)}.",
        "",
        METHOD,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Write docs/benchmarks.md and its plots from a results directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--doc", default=str(DOC))
    args = parser.parse_args(argv)
    results, doc = Path(args.results), Path(args.doc)
    meta, records = load(results)
    if not records:
        raise SystemExit(f"no results in {results}")
    pngs = plots(records, results / "plots")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(document({**meta, "results_dir": str(results)}, records, pngs, doc))
    print(f"wrote {doc} and {len(pngs)} plots in {results / 'plots'}")


if __name__ == "__main__":
    main()
