"""A session store that answers but refuses (out of memory under noeviction, demoted to a
replica) is an outage, on a real redis-server: 503 `backend_unavailable` with Retry-After,
never a 500; reads keep working while only writes are refused; an open SSE stream ends with a
whole last message and a reconnect hint; `/readyz` says not ready."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Gateway]
ServerFactory = Callable[..., RedisServer]


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_store_out_of_memory_refuses_writes_with_503_and_still_serves_reads(
    gateway_factory: GatewayFactory, redis_server_factory: ServerFactory
) -> None:
    store = redis_server_factory()
    # The memory guard (tested below) would answer new sessions before the store does.
    gateway = gateway_factory({"REDIS_URL": store.url, "SESSION_STORE_MEMORY_WATERMARK": "0"})
    player = Player(gateway.url, seed=11)
    admin = redis.Redis(port=store.port)
    try:
        assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
        # Below what the server already uses: every write that could grow memory is refused.
        admin.config_set("maxmemory", 1)
        _unavailable(player.submit({"choice_index": 1}))
        _unavailable(httpx.post(f"{gateway.url}/sessions", timeout=10))
        # A player can still read their game (the rate limiter's count, a write, fails open).
        assert player.state()["version"] == 0
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["session_store"] == "unavailable"
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        assert "pocket_portals_rate_limit_failed_open_total" in metrics
        assert "pocket_portals_rate_limit_failed_open_total 0.0" not in metrics

        admin.config_set("maxmemory", 0)
        assert player.submit({"choice_index": 1}).status_code == 202
        assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
        assert "Traceback" not in gateway.log()
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        player.close()


def test_a_store_demoted_to_replica_mid_stream_ends_streams_cleanly_and_refuses_writes(
    gateway_factory: GatewayFactory, redis_server_factory: ServerFactory
) -> None:
    store, other = redis_server_factory(), redis_server_factory()
    gateway = gateway_factory({"REDIS_URL": store.url, "SSE_PING_INTERVAL": "30"})
    player = Player(gateway.url, seed=12)
    admin = redis.Redis(port=store.port)
    lines: list[str] = []
    opened = threading.Event()
    outcome: list[BaseException | None] = []

    def listen() -> None:
        try:
            with httpx.stream(
                "GET",
                f"{gateway.url}/sessions/{player.session_id}/events",
                headers=player.auth,
                timeout=httpx.Timeout(60),
            ) as response:
                opened.set()
                for line in response.iter_lines():
                    lines.append(line)
            outcome.append(None)
        except BaseException as exc:  # a cut chunk shows up here
            outcome.append(exc)

    listener = threading.Thread(target=listen, daemon=True)
    try:
        listener.start()
        assert opened.wait(30)
        # The stream's reader is blocked in XREAD when the primary becomes a replica.
        wait_until(
            lambda: int(admin.info("clients")["blocked_clients"]) >= 1,
            timeout=30,
            what="the stream's blocked read",
        )
        admin.replicaof("127.0.0.1", other.port)
        listener.join(timeout=30)
        assert not listener.is_alive(), "the stream did not end"
        assert outcome == [None], outcome
        assert "retry: 2000" in lines, lines
        _unavailable(player.submit({"choice_index": 1}))
        assert "Traceback" not in gateway.log()
    finally:
        admin.replicaof("no", "one")
        admin.close()
        player.close()


def test_a_worker_waits_out_a_store_out_of_memory_and_then_commits_once(
    gateway_factory: GatewayFactory,
    worker_factory: Callable[..., CeleryWorker],
    redis_server_factory: ServerFactory,
    redis_url: str,
) -> None:
    store = redis_server_factory()
    # The broker on a server of its own, as compose runs it: a full store must not stop tasks.
    # A turn long enough that the refusal surely comes before its commit, however slow the
    # polls on a busy machine.
    env = {"REDIS_URL": store.url, "CELERY_BROKER_URL": redis_url, "NARRATOR_DELAY": "5"}
    worker = worker_factory(env)
    gateway = gateway_factory(env)
    player = Player(gateway.url, seed=13)
    admin = redis.Redis(port=store.port)
    try:
        accepted = player.submit({"choice_index": 1})
        assert accepted.status_code == 202
        turn_id = accepted.json()["turn_id"]
        wait_until(lambda: player.turn(turn_id)["status"] == "running", timeout=60, what="start")
        admin.config_set("maxmemory", 1)  # the commit, a second later, is refused
        wait_until(
            lambda: "session store unavailable" in worker.log(),
            timeout=60,
            what="the worker to meet the refusal",
        )
        admin.config_set("maxmemory", 0)
        turn = player.finished(turn_id, timeout=90)
        assert turn["status"] == "completed", turn
        assert turn["result"]["state_version"] == 1
        assert player.state()["version"] == 1
        log = worker.log()
        assert "Traceback" not in log and "draining session failed" not in log
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        player.close()


def test_a_store_near_its_maxmemory_takes_no_new_sessions_but_players_go_on(
    gateway_factory: GatewayFactory, redis_server_factory: ServerFactory
) -> None:
    store = redis_server_factory()
    gateway = gateway_factory(
        {
            "REDIS_URL": store.url,
            "SESSION_STORE_MEMORY_WATERMARK": "0.9",
            "STORE_MEMORY_CHECK_INTERVAL": "0.1",
        }
    )
    player = Player(gateway.url, seed=14)
    admin = redis.Redis(port=store.port)
    try:
        # Other data fills the store (so 7% of it is room enough for a few more turns) ...
        admin.set("filler", b"x" * 20_000_000)
        used = int(admin.info("memory")["used_memory"])
        # ... to 93% of its maxmemory: Redis itself still takes writes, but past the watermark.
        admin.config_set("maxmemory", int(used / 0.93))

        def refused() -> httpx.Response | None:
            response = httpx.post(f"{gateway.url}/sessions", timeout=10)
            return response if response.status_code == 503 else None

        full = wait_until(refused, timeout=30, what="new sessions refused")
        assert full.json()["error"]["code"] == "overloaded"
        assert "Adventures under way go on" in full.json()["error"]["message"]
        assert int(full.headers["Retry-After"]) >= 1
        # The player who has a session plays on.
        played = player.submit({"choice_index": 1})
        assert played.status_code == 202, played.text
        assert player.state()["version"] == 0

        admin.config_set("maxmemory", 0)
        wait_until(
            lambda: httpx.post(f"{gateway.url}/sessions", timeout=10).status_code == 201,
            timeout=30,
            what="new sessions taken again",
        )
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        player.close()
