"""`python -m worker.health`: a worker's own health check, without the gateway."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.processes import CeleryWorker, run_python
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_healthy_while_the_worker_runs_unhealthy_when_it_stops(
    worker_factory: Callable[..., CeleryWorker], service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **service_env,
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        "SWEEP_INTERVAL": "0.5",
    }
    worker = worker_factory(env)
    healthy = wait_until(
        lambda: run_python(["-m", "worker.health"], env).returncode == 0 or None,
        timeout=30,
        what="a healthy worker",
    )
    assert healthy
    os.kill(worker.pid, signal.SIGSTOP)  # hung: no more sweeps, no more heartbeats
    try:
        checked = wait_until(
            lambda: (lambda r: r if r.returncode == 1 else None)(
                run_python(["-m", "worker.health"], env)
            ),
            timeout=60,
            what="the check to notice",
        )
        assert "last heartbeat" in checked.stderr
    finally:
        os.kill(worker.pid, signal.SIGCONT)


def test_unhealthy_without_a_heartbeat_or_a_broker(tmp_path: Path) -> None:
    env = {
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "never-written"),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CREWAI_STORAGE_DIR": str(tmp_path / "crewai"),
    }
    checked = run_python(["-m", "worker.health"], env)
    assert checked.returncode == 1
    assert "no heartbeat" in checked.stderr and "broker does not answer" in checked.stderr
