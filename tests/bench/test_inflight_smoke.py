"""A smoke run of the in-flight benchmark with tiny counts, so the command cannot rot. It
asserts nothing about speed, only that every measure of the thread pool (what --quick runs)
is there."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_inflight_smoke_run_measures_every_row() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.inflight", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = result.stdout
    for measure in (
        "threads pool -c 8",
        "per turn in flight",
        "worker CPU per turn",
        "store commands per turn",
        "accept (gateway)",
        "broker commands per turn",
        "per-token stream (one chunk per token)",
        "CPU per streamed chunk, in-process",
        "time to first token added by the service (first delta at the player",
        "LLM tokens per turn",
    ):
        assert measure in table, table
    assert "no turn measured" not in table
