"""Smoke runs of `bench.commands` (with its one-turn trace) and `bench.pools` with tiny counts,
so the commands cannot rot. They assert nothing about speed or counts, only that the tables
are made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args, "--no-write"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


@pytest.mark.timeout(300)
def test_commands_smoke_run_counts_both_servers_and_traces_a_turn() -> None:
    table = _run("bench.commands", "--turns", "2", "--trace")
    assert "| **all** |" in table, table
    assert "One turn's store commands, in order" in table, table
    assert "EVALSHA" in table, table  # the trace saw the turn's scripts


@pytest.mark.timeout(300)
def test_pools_smoke_run_measures_a_cell() -> None:
    table = _run("bench.pools", "--turns", "2", "--narrators", "offline", "--pools", "solo")
    assert "| offline | solo | 1 |" in table, table
