"""A smoke run of `bench.flow` with tiny counts, so the command cannot rot. It asserts nothing
about speed, only that the table is made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT


@pytest.mark.timeout(120)
def test_flow_smoke_run_measures_the_step_and_the_game() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.flow", "--quick", "--no-write"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "| a whole flow step (`run_turn_step`) |" in result.stdout, result.stdout
    assert "**the engine's cost**" in result.stdout, result.stdout
