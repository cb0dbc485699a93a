"""A gateway told to stop answers its open long polls at once (api/shutdown.py), instead of
holding its exit for up to LONG_POLL_MAX while a container runtime's grace runs out."""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis

from tests.support.player import Player
from tests.support.processes import Gateway
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until


def test_a_stopping_gateway_answers_its_long_polls_at_once(
    gateway_factory: Callable[..., Gateway], redis_server_factory: Callable[..., RedisServer]
) -> None:
    # A store of its own: its blocked clients (counted below) are this gateway's alone.
    server = redis_server_factory()
    gateway = gateway_factory({"REDIS_URL": server.url})  # and no worker: the turn stays queued
    player = Player(gateway.url)
    store = redis.Redis.from_url(server.url)
    try:
        turn_id = player.submit({"action": "Look around"}).json()["turn_id"]
        assert int(store.info("clients")["blocked_clients"]) == 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Bounded well below the poll's wait: a gateway that waited the poll out fails.
            poll = pool.submit(
                player.http.get,
                f"/sessions/{player.session_id}/turns/{turn_id}",
                params={"wait": 30},
                headers=player.auth,
                timeout=20,
            )
            wait_until(
                lambda: int(store.info("clients")["blocked_clients"]) == 1,
                timeout=30,
                what="the long poll to block on the event stream",
            )
            gateway.signal_group(signal.SIGTERM)
            answer = poll.result(timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "queued"
        assert gateway.process is not None
        # uvicorn, once stopped cleanly, raises the signal it caught again.
        assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        store.close()
        player.close()
