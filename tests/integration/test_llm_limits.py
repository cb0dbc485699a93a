"""Provider limits across the fleet: two real worker processes draw on one LLM budget kept
in the session store, and the fake server sees no more calls per second than it allows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway
from tests.support.sse import SseEvent

pytestmark = pytest.mark.integration

RPM = 240  # one call every 0.25 s
BURST_SECONDS = 1  # four calls may go at once
INTERVAL = 60 / RPM
BURST_CALLS = BURST_SECONDS / INTERVAL
# A booked slot is kept to, but the call reaches the server a little later on a busy machine.
LATE = 0.5


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def test_two_workers_share_one_budget(
    server: FakeLLM,
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
) -> None:
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": "openai/story",
        "LLM_BASE_URL": server.base_url,
        "LLM_TIMEOUT": "10",
        "LLM_RPM": str(RPM),
        "LLM_BURST_SECONDS": str(BURST_SECONDS),
        "LLM_MAX_WAIT": "60",
    }
    workers = [worker_factory(env, name=f"budget{n}") for n in range(2)]
    gateway = gateway_factory()
    players = [Player(gateway.url, seed=n) for n in range(4)]
    first = len(server.requests)
    failures: list[BaseException] = []
    watched: list[SseEvent] = []

    def play(player: Player) -> None:
        try:
            for body in ({"choice_index": 3}, {"choice_index": 1}, {"choice_index": 1}):
                accepted = player.submit(body)
                assert accepted.status_code == 202, accepted.text
                turn = player.finished(accepted.json()["turn_id"], timeout=120)
                assert turn["status"] == "completed", turn
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=play, args=(p,)) for p in players]

    def start_playing() -> None:
        for thread in threads:
            thread.start()

    try:
        # One player's stream is followed live: a turn that waits for its slot says so.
        watched += players[0].events(
            until=lambda evs: failures or sum(e.event == "turn.completed" for e in evs) == 3,
            on_open=lambda: (
                [t.start() for t in threads]
                + [threading.Thread(target=play, args=(players[0],)).start()]
            ),
            timeout=180,
        )
        for thread in threads:
            thread.join(timeout=180)
        assert not failures, failures
        arrivals = sorted(request["at"] for request in server.requests[first:])
        assert len(arrivals) >= 20
        # Between any two calls, no more than the budget allows (its burst included).
        for i in range(len(arrivals)):
            for j in range(i + 1, len(arrivals)):
                allowed = (arrivals[j] - arrivals[i] + LATE) / INTERVAL + BURST_CALLS + 1
                assert j - i <= allowed, (i, j, arrivals[j] - arrivals[i])
        waiting = [e for e in watched if e.event == "turn.started" and "waiting" in e.data]
        assert waiting and waiting[0].data["waiting"] == "budget"
        assert waiting[0].data["wait_seconds"] > 0
        for worker in workers:  # both drew on the budget
            assert "completed in" in worker.log(), worker.name
    finally:
        for player in players:
            player.close()


def test_a_session_or_client_past_its_daily_tokens_is_told_offline(
    server: FakeLLM,
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
) -> None:
    worker_factory(
        {
            "NARRATOR": "llm",
            "LLM_MODEL": "openai/story",
            "LLM_BASE_URL": server.base_url,
            "LLM_TIMEOUT": "10",
            "LLM_TOKENS_PER_SESSION_PER_DAY": "100",
            "LLM_TOKENS_PER_CLIENT_PER_DAY": "100",
        }
    )
    gateway = gateway_factory()
    # The gateway takes the client's address from X-Forwarded-For when its peer is a proxy
    # on loopback (uvicorn's default): each address here is a client of its own, unspent.
    spender = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    other = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    first, second, third = (Player(gateway.url, seed=n) for n in range(3))

    def play(player: Player, address: str, choice: int = 3) -> dict[str, Any]:
        accepted = player.submit({"choice_index": choice}, **{"X-Forwarded-For": address})
        assert accepted.status_code == 202, accepted.text
        turn = player.finished(accepted.json()["turn_id"], timeout=60)
        assert turn["status"] == "completed", turn
        return dict(turn["result"])

    try:
        told = play(first, spender)
        assert told["narrator"] == "llm" and told["usage"]["total_tokens"] > 100
        assert {"innkeeper", "narrator"} <= set(told["usage"]["agents"])
        calls = len(server.requests)
        # The session has spent its day's tokens: told offline, no LLM call made.
        past = play(first, spender, choice=1)
        assert past["narrator"] == "offline_budget" and past["usage"] is None
        assert len(server.requests) == calls
        # A fresh session of the same client: the client has spent its day's tokens.
        assert play(second, spender)["narrator"] == "offline_budget"
        assert play(third, other)["narrator"] == "llm"  # another client, its own budget
    finally:
        for player in (first, second, third):
            player.close()
