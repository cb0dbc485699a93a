"""A smoke run of the turn benchmark with tiny counts, so the command cannot rot. It asserts
nothing about speed (tests never assert wall-clock times), only that every row is measured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_benchmark_smoke_run_measures_every_row() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.turns", "--quick", "--samples", "5", "--no-write"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = result.stdout
    for row in (
        "raw Celery task round trip, sequential",
        "turn end to end: POST -> turn.completed",
        "gateway POST /turns alone",
        "100 sessions",
        "Redis bytes per session",
        "worker PSS",
        "gateway RSS",
        "ratio: end-to-end p50",
    ):
        assert row in table, row
