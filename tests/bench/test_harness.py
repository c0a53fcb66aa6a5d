"""The benchmark harness runs end to end on a tiny load and writes well-formed results (no timing checks)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / "bench" / "peers"


def test_harness_runs_node_and_ours_end_to_end(tmp_path):
    # Fail, never skip: the bench tier needs node and the npm packages (`cd bench/peers && npm ci`).
    assert shutil.which("node") and shutil.which("npm"), "node and npm must be installed for tests/bench"
    assert (PEERS / "node_modules" / "ws").is_dir(), "bench/peers/node_modules missing: run `cd bench/peers && npm ci`"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--tiny", "--servers", "node,ours", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    data = json.loads((tmp_path / "fanout.json").read_text())
    assert data["meta"]["mode"] == "tiny"
    assert {"run_id", "git", "settings", "duration_s"} <= data["meta"].keys()
    records = data["records"]
    assert {(r["server"], r["mode"]) for r in records} == {("node", "open"), ("node", "closed"),
                                                            ("ours", "open"), ("ours", "closed")}
    for r in records:
        assert r["scenario"] == "fanout" and r["shape"] == "1x5" and r["rep"] == 1
        assert r["expected"] == r["sent"] * 5 > 0
        assert 0 < r["delivered"] <= r["expected"]
        assert 0 <= r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["server_cpu_s"] >= 0 and r["peak_rss_mb"] > 0 and r["server_processes"] >= 1
        assert 0 <= r["client_cpu_share"] and isinstance(r["client_bound"], bool)
        assert r["client_errors"] == 0
        if r["mode"] == "open":  # 50 deliveries/s: every one arrives
            assert r["delivered"] == r["expected"] and r["loss"] == 0
    assert "node" in run.stdout and "ours" in run.stdout  # the summary table
    # User sockets (ours only): the same messages, then a room_state on each member's user socket too.
    users = json.loads((tmp_path / "usersocket.json").read_text())["records"]
    assert [(r["server"], r["variant"]) for r in users] == [("ours", "plain"), ("ours", "watched")]
    plain, watched = users
    for r in users:
        assert r["sent"] > 0 and r["delivered"] == r["expected"] == r["sent"] * 100 and r["client_errors"] == 0
        assert r["cpu_us_per_message"] > 0
    assert plain["listened"] == 0 and plain["watchers"] == 0
    # One room_state per watcher per change it saw; a batch of messages may make one frame.
    assert 0 < watched["listened"] <= watched["sent"] * 100 and watched["watchers"] == 100
    assert "user sockets add" in run.stdout
