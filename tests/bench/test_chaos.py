"""A tiny chaos run in every test run, so the script cannot rot and the guarantees are
checked once more with everything breaking together."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_small_chaos_run_loses_doubles_and_misorders_nothing() -> None:
    args = [
        "--turns",
        "30",
        "--sessions",
        "5",
        "--child-kills",
        "1",
        "--worker-kills",
        "1",
        "--redis-restarts",
        "1",
        "--no-write",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "| lost " in result.stdout and "| 0 |" in result.stdout
