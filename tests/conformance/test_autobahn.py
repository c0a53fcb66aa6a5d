"""RFC 6455 conformance: the Autobahn cases (via kosoku) against Daphne directly and through nginx."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.known_failures import KNOWN_FAILURES

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(1500)]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
CORE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
# 12 and 13 (permessage-deflate) take minutes in full; `make conformance` runs them all.
# `make test` runs every kind: each payload (12.1-12.5) and each offer/accept parameter set
# (13.1-13.7), each with a small message (.1, 16 B), a large one (.8, 32 KiB) and a
# fragmented one (.12, 16 KiB in 256 B frames): 36 of the 216 cases.
COMPRESSION_KINDS = [f"12.{n}" for n in range(1, 6)] + [f"13.{n}" for n in range(1, 8)]
COMPRESSION_QUICK = [f"{kind}.{case}" for kind in COMPRESSION_KINDS for case in (1, 8, 12)]
COMPRESSION_FULL = ["12.*", "13.*"]


def kosoku() -> str:
    path = shutil.which("kosoku") or str(Path(sys.executable).parent / "kosoku")
    if not Path(path).exists():
        pytest.fail("kosoku is missing: it is in requirements-dev.txt")
    return path


def run_cases(port: int, include: list[str], outdir: Path) -> dict[str, dict]:
    """Run the cases against 127.0.0.1:port; return each case's report by id."""
    args = [kosoku(), f"127.0.0.1:{port}", "-o", str(outdir), "-p", "2"]
    for case in include:
        args += ["-i", case]
    if not os.environ.get("CHAT_CONFORMANCE_FULL"):
        for case in KNOWN_FAILURES:
            args += ["-x", case]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=1200)
    reports = {}
    for path in outdir.glob("*case_*.json"):
        report = json.loads(path.read_text())
        reports[report["id"]] = report
    return reports


def failures(reports: dict[str, dict]) -> dict[str, str]:
    return {
        case: f"{r['behavior']}/{r['behaviorClose']}: {r.get('result')}"
        for case, r in reports.items()
        if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING
    }


def compression_cases() -> list[str]:
    return COMPRESSION_FULL if os.environ.get("CHAT_CONFORMANCE_FULL") else COMPRESSION_QUICK


@pytest.mark.parametrize("target", ["daphne", "nginx"])
def test_core_cases_pass(target, echo_server, request, tmp_path):
    port = echo_server.port if target == "daphne" else request.getfixturevalue("echo_nginx")
    reports = run_cases(port, CORE, tmp_path)
    assert len(reports) > 290, sorted(reports)
    assert failures(reports) == {}


# nginx passes the upgrade and its extension offer through untouched, so the run via nginx
# tests Daphne's deflate end to end; `make test` runs it there only (about a minute each way
# here), and the full mode runs it both ways.
COMPRESSION_TARGETS = ["daphne", "nginx"] if os.environ.get("CHAT_CONFORMANCE_FULL") else ["nginx"]


@pytest.mark.parametrize("target", COMPRESSION_TARGETS)
def test_compression_cases_pass_with_permessage_deflate(target, echo_server, request, tmp_path):
    port = echo_server.port if target == "daphne" else request.getfixturevalue("echo_nginx")
    reports = run_cases(port, compression_cases(), tmp_path)
    assert {case.rsplit(".", 1)[0] for case in reports} == set(COMPRESSION_KINDS)
    assert failures(reports) == {}
    # The server really negotiated the extension (no UNIMPLEMENTED behaviour).
    assert all("permessage-deflate" in r["httpResponse"] for r in reports.values())


def test_empty_frames_are_echoed(echo_server, tmp_path):
    """Daphne drops empty frames; our protocol subclass sends them (cases 1.1.1 and 1.2.1)."""
    reports = run_cases(echo_server.port, ["1.1.1", "1.2.1"], tmp_path)
    assert {case: r["behavior"] for case, r in reports.items()} == {"1.1.1": "OK", "1.2.1": "OK"}
