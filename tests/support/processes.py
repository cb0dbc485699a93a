"""Real service processes for integration tests: Celery workers and the uvicorn gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until
from worker.application import READY_MARK

__all__ = ["REPO_ROOT", "CeleryWorker", "Gateway", "ManagedProcess", "run_python"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python ARGS` from the repository root with exactly `env` (nothing inherited), as a
    process starting on a machine configured that way would."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


class ManagedProcess:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = logdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # A process group of its own, so a kill reaches the pool children too.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
            )

    def signal_group(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(timeout)
        self.process = None

    def kill(self, timeout: float = 30) -> None:
        """Gone at once, as in a crash: SIGKILL to the whole group."""
        if self.process is None:
            return
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=timeout)
        self.process = None


class CeleryWorker(ManagedProcess):
    def __init__(
        self,
        env: dict[str, str],
        logdir: Path,
        *,
        name: str = "worker",
        concurrency: int = 2,
        pool: str = "prefork",
    ) -> None:
        self.concurrency = concurrency
        self.pool = pool
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--loglevel=INFO",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        super().__init__(name, args, env, logdir)

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            # Every pool process (a thread pool: the worker itself) has imported the game and
            # opened its runtime.
            self.check_alive()
            processes = self.concurrency if self.pool == "prefork" else 1
            return self.log().count(f"{READY_MARK}: pool process ready") >= processes

        wait_until(ready, timeout=timeout, what=f"celery worker {self.name}", interval=0.1)


class Gateway(ManagedProcess):
    def __init__(
        self,
        env: dict[str, str],
        logdir: Path,
        *,
        name: str = "gateway",
        args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        base = args or [sys.executable, "-m", "uvicorn", "api.main:app"]
        super().__init__(
            name, [*base, "--host", "127.0.0.1", "--port", str(self.port)], env, logdir
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        def healthy() -> bool:
            self.check_alive()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, what=f"gateway on {self.port}", interval=0.1)


def service_environment(redis_url: str, workdir: Path) -> dict[str, str]:
    """Environment for service processes: a queue of their own, so workers of other tests (or
    other runs against a shared TEST_REDIS_URL) never take their tasks."""
    return {
        "SESSION_BACKEND": "redis",
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": f"pocket_portals.test.{uuid.uuid4().hex[:12]}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CREWAI_STORAGE_DIR": str(workdir / "crewai"),
        "SSE_PING_INTERVAL": "1",
        "REDIS_SESSION_TTL": "600",
        "LEASE_TTL": "5",
        "PYTHONUNBUFFERED": "1",
        # Tests create sessions by the dozen from one address, sharing one store; the
        # creation budget and the per-client turn limit have tests of their own
        # (tests/api/test_sessions.py, test_turns.py).
        "SESSION_CREATE_PER_MINUTE": "0",
        "MAX_TURNS_IN_FLIGHT_PER_CLIENT": "0",
    }
