"""Fixtures shared by the whole suite. Servers are real: a throwaway redis-server on a free
port (or the one named by TEST_REDIS_URL), real Celery workers, real uvicorn."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.settings import Settings
from tests.support.processes import CeleryWorker, Gateway
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer, redis_server_binary

# Reserved for tests when TEST_REDIS_URL names a server the suite did not start.
TEST_DB = 15


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ValueError):
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the whole run: never one whose data the suite could harm."""
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        if not _answers(given):
            pytest.fail(f"TEST_REDIS_URL={given} does not answer PING.")
        yield given
        return
    if redis_server_binary() is not None:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    fallback = os.environ.get("REDIS_URL", "redis://localhost:6379/0").rsplit("/", 1)[0]
    if _answers(f"{fallback}/{TEST_DB}"):
        yield f"{fallback}/{TEST_DB}"
        return
    pytest.fail(
        "These tests need a real Redis. Install redis-server (Debian/Ubuntu: "
        "`sudo apt-get install redis-server`; macOS: `brew install redis`) so the suite can "
        "start a throwaway one, or set TEST_REDIS_URL to a server it may use."
    )


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local three-master Redis Cluster for the whole run (see tests/support)."""
    if redis_server_binary() is None:
        pytest.fail("The cluster tests start redis-server in cluster mode: install redis-server.")
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Throwaway servers a test may stop, kill and restart."""
    servers: list[RedisServer] = []

    def make(*, appendonly: bool = False) -> RedisServer:
        if redis_server_binary() is None:
            pytest.fail("This test restarts Redis: install redis-server.")
        server = RedisServer(tmp_path / f"redis-{len(servers)}", appendonly=appendonly).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def service_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for service processes: a queue of this test's own, so workers of other
    tests (or other runs against a shared TEST_REDIS_URL) never take its tasks."""
    return {
        "SESSION_BACKEND": "redis",
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": f"pocket_portals.test.{uuid.uuid4().hex[:12]}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CREWAI_STORAGE_DIR": str(tmp_path / "crewai"),
        "SSE_PING_INTERVAL": "1",
        "REDIS_SESSION_TTL": "600",
        "LEASE_TTL": "5",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def worker_factory(
    tmp_path: Path, service_env: dict[str, str]
) -> Iterator[Callable[..., CeleryWorker]]:
    workers: list[CeleryWorker] = []

    def make(env: dict[str, str] | None = None, **kwargs: Any) -> CeleryWorker:
        kwargs.setdefault("name", f"worker{len(workers)}")
        worker = CeleryWorker({**service_env, **(env or {})}, tmp_path, **kwargs)
        workers.append(worker)
        worker.start()
        worker.wait_ready()
        return worker

    yield make
    for worker in workers:
        worker.stop()


@pytest.fixture
def gateway_factory(
    tmp_path: Path, service_env: dict[str, str]
) -> Iterator[Callable[..., Gateway]]:
    gateways: list[Gateway] = []

    def make(env: dict[str, str] | None = None, **kwargs: Any) -> Gateway:
        kwargs.setdefault("name", f"gateway{len(gateways)}")
        gateway = Gateway({**service_env, **(env or {})}, tmp_path, **kwargs)
        gateways.append(gateway)
        gateway.start()
        gateway.wait_ready()
        return gateway

    yield make
    for gateway in gateways:
        gateway.stop()


@pytest.fixture
def memory_settings(tmp_path: Path) -> Settings:
    return Settings(
        session_backend="memory",  # type: ignore[arg-type]
        celery_task_always_eager=True,
        crewai_storage_dir=tmp_path / "crewai",
        sse_ping_interval=1,
        _env_file=None,  # type: ignore[call-arg]
    )
