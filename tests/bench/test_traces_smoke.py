"""A smoke run of the traces benchmark (off and on, one round, tiny counts), so the command
cannot rot. Nothing about speed is asserted, only that both modes were measured and that
spans arrived with tracing on."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_traces_benchmark_measures_both_modes() -> None:
    args = ["--rounds", "1", "--sessions", "2", "--turns", "2", "--no-write"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.traces", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "| throughput, turns/s |" in result.stdout
    assert "| CPU per turn, ms (gateway + workers) |" in result.stdout
    spans = re.search(r"Spans received with tracing on: (\d+)", result.stdout)
    assert spans is not None and int(spans.group(1)) > 0
