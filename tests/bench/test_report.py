"""bench/report.py computes the issue's targets from records (synthetic here: no timing involved)."""

from bench import report


def fanout(server, rep, steps, closed):
    """Records of one fan-out repetition: steps are (offered, delivered, p99), closed is (delivered, cpu)."""
    common = {"scenario": "fanout", "shape": "10x50", "server": server, "label": server, "rep": rep,
              "peak_rss_mb": 50.0, "loss": 0.0, "client_cpu_share": 0.3, "client_bound": False}
    rows = [{**common, "mode": "open", "step": i, "offered_deliveries_per_s": offered, "delivered_per_s": delivered,
             "p50_ms": 1.0, "p99_ms": p99, "max_ms": p99, "cpu_us_per_delivery": 20.0, "saturated": False}
            for i, (offered, delivered, p99) in enumerate(steps)]
    return rows + [{**common, "mode": "closed", "delivered_per_s": closed[0], "cpu_us_per_delivery": closed[1],
                    "p50_ms": 1.0, "p99_ms": 9.0, "max_ms": 9.0}]


def row(lines, start):
    return next(line for line in lines if line.startswith(start) or start in line)


def test_targets_take_the_step_nearest_half_the_peak_and_judge_the_medians():
    ladder = [20_000, 40_000, 80_000, 160_000]
    records = (
        fanout("cluster", 1, [(o, o, p) for o, p in zip(ladder, [3, 30, 70, 300], strict=True)], (120_000, 12.0))
        + fanout("cluster", 2, [(o, o, p) for o, p in zip(ladder, [3, 20, 40, 300], strict=True)], (150_000, 10.0))
        + fanout("node", 1, [(o, o, 2) for o in ladder], (140_000, 6.0))
    )
    lines = report.targets(records)
    # Peaks 160k in both reps: half is 80k, so the 80k step's p99s (70, 40) give a median of 55.
    half = row(lines, "| fan-out 10×50, cluster | p99 ms at the step nearest half our peak (~80,000/s)")
    assert "| 55.0 [40.0–70.0] |" in half and half.endswith("| < 50 ms | **no** |")
    cpu = row(lines, "| fan-out 10×50, cluster | CPU-µs/delivery")
    assert "| 11.0 [10.0–12.0] | 6.00 |" in cpu and "1.8×" in cpu and cpu.endswith("| yes |")
    peak = row(lines, "| fan-out 10×50, cluster | peak delivered/s")
    assert peak.endswith("| ≥ 0.5× | yes |")
