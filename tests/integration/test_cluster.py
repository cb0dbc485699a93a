"""The service with its sessions in a Redis Cluster (the broker on a standalone Redis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway

pytestmark = pytest.mark.integration


def test_turns_play_with_sessions_in_a_cluster(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    redis_cluster_url: str,
    redis_url: str,
) -> None:
    env = {"REDIS_URL": redis_cluster_url, "CELERY_BROKER_URL": redis_url}
    worker_factory(env)
    gateway = gateway_factory(env)
    players = [Player(gateway.url, seed=seed) for seed in range(3)]  # spread over slots
    try:
        for player in players:
            first = player.play({"choice_index": 1})
            second = player.play({"action": "Look around"})
            assert second["result"]["state_version"] == first["result"]["state_version"] + 1
            assert player.state()["version"] == 2
        ready = players[0].http.get("/readyz")
        assert ready.status_code == 200, ready.text
    finally:
        for player in players:
            player.close()
