"""A smoke run of the traces benchmark (off, on for every turn, on for one in ten; one round,
tiny counts), so the command cannot rot. Nothing about speed is asserted, only that every
mode was measured and that spans arrived from each traced mode."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_traces_benchmark_measures_every_mode() -> None:
    args = ["--rounds", "1", "--sessions", "2", "--turns", "2", "--workers", "1", "--no-write"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.traces", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^\| ([a-z0-9 ]+) \|.* \| (\d+) \|$", result.stdout, re.M)
    }
    assert rows.keys() == {"off", "every turn", "1 turn in 10"}, result.stdout
    assert rows["off"] == 0
    assert rows["every turn"] > 0  # a sampled-out turn may leave none at these counts
