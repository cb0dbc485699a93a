"""Protections that only show with real processes: a rate limit shared by two gateway
processes, the service-wide bound on turns in flight counted by two gateway processes, and
tokens kept out of access logs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.player import Player
from tests.support.processes import Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Gateway]


def test_rate_limit_is_shared_by_gateway_processes(gateway_factory: GatewayFactory) -> None:
    env = {"RATE_LIMIT_PER_MINUTE": "6"}
    first, second = gateway_factory(env), gateway_factory(env)
    statuses = []
    for n in range(8):
        target = first if n % 2 == 0 else second
        statuses.append(httpx.post(f"{target.url}/sessions", timeout=30).status_code)
    # The window may roll over mid-test; at least one refusal must come within 8 requests.
    assert statuses.count(201) >= 6 and 429 in statuses, statuses


def test_queue_depth_bound_answers_overloaded(gateway_factory: GatewayFactory) -> None:
    """Admission is counted atomically as turns are accepted, by every gateway process
    together: the bound holds exactly, even for turns sent at the same moment."""
    gateways = [gateway_factory({"MAX_QUEUE_DEPTH": "4"}) for _ in range(2)]  # no worker
    players = [Player(gateways[n % 2].url) for n in range(8)]
    try:
        with ThreadPoolExecutor(max_workers=len(players)) as pool:
            answers = list(pool.map(lambda p: p.submit({"choice_index": 1}), players))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] * 4 + [503] * 4, statuses
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        for player in players:
            player.close()


def test_tokens_never_reach_the_access_log(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory()
    player = Player(gateway.url)
    try:
        url = f"{gateway.url}/sessions/{player.session_id}/events"
        wrong = httpx.get(f"{url}?token=WrongSecretValue123", timeout=30)
        assert wrong.status_code == 404
        with httpx.stream("GET", f"{url}?token={player.token}&x=1", timeout=30) as stream:
            assert stream.status_code == 200
        player.http.get(f"/sessions/{player.session_id}", headers=player.auth)

        def logged() -> bool:
            return "token=[redacted]&x=1" in gateway.log()

        wait_until(logged, timeout=30, what="the access log line")
        log = gateway.log()
        assert player.token not in log and "WrongSecretValue123" not in log
    finally:
        player.close()
