"""One worker process with a thread pool keeps a hundred LLM turns in flight at once: the
tests' OpenAI-compatible server answers each call after 2 s, and counts how many calls are
waiting together. Three hundred players act at once, so that on a busy 2-core machine (the
CPU a turn needs besides the LLM spreads the turns out) well over a hundred still overlap."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway

pytestmark = pytest.mark.integration

SESSIONS = 300


@pytest.fixture
def slow_llm() -> Iterator[FakeLLM]:
    with fake_llm() as server:
        yield server


@pytest.mark.timeout(900)
def test_a_thread_pool_worker_keeps_a_hundred_llm_turns_in_flight(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    slow_llm: FakeLLM,
) -> None:
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": "openai/wait-2",
        "LLM_BASE_URL": slow_llm.base_url,
        "LLM_API_KEY": "sk-local-test",
        "LLM_TIMEOUT": "60",
        "LLM_RETRIES": "0",
        "LLM_FALLBACK": "fail",  # a turn told offline would not prove anything here
        "RATE_LIMIT_PER_MINUTE": "0",
        "REDIS_MAX_CONNECTIONS": "100",
        "WORKER_STEP_THREADS": "400",
    }
    worker = worker_factory(env, pool="threads", concurrency=350)
    gateway = gateway_factory(env)
    limits = httpx.Limits(max_connections=SESSIONS + 8, max_keepalive_connections=SESSIONS + 8)
    http = httpx.Client(base_url=gateway.url, timeout=120, limits=limits)
    try:
        with ThreadPoolExecutor(max_workers=32) as clients:
            players = list(clients.map(lambda _: Player(gateway.url, client=http), range(SESSIONS)))
        # Every player acts at once and waits for its turn, as a crowd would.
        with ThreadPoolExecutor(max_workers=SESSIONS) as crowd:
            finished = list(crowd.map(play_one, players))
        assert all(turn["status"] == "completed" for turn in finished), [
            turn for turn in finished if turn["status"] != "completed"
        ][:3]
        assert all(turn["result"]["narrator"] == "llm" for turn in finished)
        # Every one of them waited on the LLM at the same time as most of the others, in
        # one worker process.
        assert slow_llm.max_in_flight >= 100, slow_llm.max_in_flight
        # One process: the worker's own (a thread pool forks no children).
        assert set(re.findall(r"started in pid (\d+)", worker.log())) == {str(worker.pid)}
    finally:
        http.close()


def play_one(player: Player) -> dict[str, object]:
    turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
    for _ in range(12):  # up to 6 minutes on a busy machine
        turn = player.turn(turn_id, wait=30)
        if turn["status"] in ("completed", "failed"):
            return turn
    return turn
