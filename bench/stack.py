"""The service on free loopback ports for benchmarks and chaos runs: a redis-server, Celery
worker processes and a uvicorn gateway, all started here and stopped on exit."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.support.processes import CeleryWorker, Gateway
from tests.support.redis_server import RedisServer

__all__ = ["ServiceStack"]


class ServiceStack:
    def __init__(
        self,
        workdir: Path,
        *,
        workers: int,
        concurrency: int,
        env: dict[str, str] | None = None,
        appendonly: bool = True,
        redis_url: str | None = None,
        pool: str = "prefork",
    ) -> None:
        self.workdir = workdir
        self.pool = pool
        self.redis: RedisServer | None = None
        if redis_url is None:
            self.redis = RedisServer(workdir / "redis", appendonly=appendonly).start()
            redis_url = self.redis.url
        self.redis_url = redis_url
        self.env = {
            "SESSION_BACKEND": "redis",
            "REDIS_URL": redis_url,
            "CELERY_QUEUE": f"pocket_portals.bench.{uuid.uuid4().hex[:8]}",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CREWAI_STORAGE_DIR": str(workdir / "crewai"),
            # One load generator on one address: the per-client limit is not what is measured.
            "RATE_LIMIT_PER_MINUTE": "0",
            "SESSION_CREATE_PER_MINUTE": "0",
            "MAX_TURNS_IN_FLIGHT_PER_CLIENT": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.concurrency = concurrency
        self.workers: list[CeleryWorker] = []
        self.worker_count = 0
        for _ in range(workers):
            self.add_worker()
        self.gateway = Gateway(self.env, workdir, name="gateway")
        self.gateway.start()
        self.gateway.wait_ready()

    def add_worker(self, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        worker = CeleryWorker(
            {**self.env, **(env or {})},
            self.workdir,
            name=f"worker{self.worker_count}",
            concurrency=self.concurrency,
            pool=self.pool,
        )
        if args is not None:
            worker.args = args
        self.worker_count += 1
        worker.start()
        worker.wait_ready(timeout=180)
        self.workers.append(worker)

    def stop(self) -> None:
        self.gateway.stop()
        for worker in self.workers:
            worker.stop()
        if self.redis is not None:
            self.redis.stop()
