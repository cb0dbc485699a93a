"""Fixtures shared by the whole suite. Servers are real: a throwaway redis-server on a free
port (or the one named by TEST_REDIS_URL), real Celery workers, real uvicorn."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.settings import Settings
from tests.support.processes import CeleryWorker, Gateway, service_environment
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_sentinel import LocalSentinel
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


DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _amqp_answers(url: str) -> bool:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        return True
    except Exception:
        return False


def _delete_queue(url: str, queue: str) -> None:
    import kombu

    with kombu.Connection(url, connect_timeout=3) as connection:
        connection.default_channel.queue_delete(queue=queue)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite golden files (docs/playthrough.md) from the current game",
    )


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


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master, a replica and three Sentinels for the whole run (see tests/support); no
    test fails this one over (those start their own with `sentinel_factory`)."""
    if redis_server_binary() is None:
        pytest.fail("The Sentinel tests start redis-server in Sentinel mode: install redis-server.")
    deployment = LocalSentinel(tmp_path_factory.mktemp("sentinel")).start()
    try:
        yield deployment.url
    finally:
        deployment.stop()


@pytest.fixture
def sentinel_factory(tmp_path: Path) -> Iterator[Callable[[], LocalSentinel]]:
    """Sentinel deployments a test may fail over."""
    deployments: list[LocalSentinel] = []

    def make() -> LocalSentinel:
        if redis_server_binary() is None:
            pytest.fail("This test fails a Redis over: install redis-server.")
        deployment = LocalSentinel(tmp_path / f"sentinel-{len(deployments)}")
        deployments.append(deployment)
        return deployment.start()

    yield make
    for deployment in deployments:
        deployment.stop()


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


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """A RabbitMQ for the whole run. The suite only declares (and then deletes) queues of its
    own there; it never purges or deletes anything else."""
    given = os.environ.get("TEST_AMQP_URL") or DEFAULT_AMQP_URL
    if not _amqp_answers(given):
        pytest.fail(
            f"These tests need RabbitMQ and none answers at {given}. Install and start it "
            "(Debian/Ubuntu: `sudo apt-get install rabbitmq-server`; ./scripts/test does so "
            "where it can), or set TEST_AMQP_URL to a broker the suite may use."
        )
    return given


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """Which broker the service processes of a test use: Redis (the default) or RabbitMQ
    (`@pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)`)."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture
def service_env(
    redis_url: str, tmp_path: Path, broker: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """A test's `service_environment`, on its broker."""
    env = service_environment(redis_url, tmp_path)
    if broker == "amqp":
        env["CELERY_BROKER_URL"] = request.getfixturevalue("amqp_url")
    yield env
    if broker == "amqp":
        _delete_queue(env["CELERY_BROKER_URL"], env["CELERY_QUEUE"])
        # An AMQP socket this test's process left open would otherwise warn whenever the
        # collector next runs, failing some later test on the Redis broker (seen once):
        # collected here, the warning fails the test that leaked it.
        gc.collect()


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
        session_create_per_minute=0,
        max_turns_in_flight_per_client=0,
        _env_file=None,  # type: ignore[call-arg]
    )
