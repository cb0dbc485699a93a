"""One worker process with a thread pool keeps a hundred LLM turns in flight at once: the
tests' OpenAI-compatible server answers each call after 2 s. Two hundred players act at
once; the worker's own log of each turn's start and end shows how many ran together, and
the server counts how many calls waited together.

The second figure depends on spare CPU: one process runs every turn's CrewAI flow and LLM
client under one GIL (about 40 ms of CPU a turn), so on a busy 2-core machine the calls
spread out. Its bound is set far above what a pool that serialised turns would give (1, or
2 for the prefork baseline), not at the hundred that the turns in flight must reach. One
retry of an LLM call is allowed, as in production (the default is two): at this load the
test's small server now and then drops a connection, and a turn failing for that would say
nothing about the pool; the retries are counted and bounded."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway
from tests.support.waiting import wait_until
from tests.support.worker_log import most_turns_running_at_once, turn_spans

pytestmark = pytest.mark.integration

SESSIONS = 200


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
        "LLM_RETRIES": "1",
        "LLM_FALLBACK": "fail",  # a turn told offline would not prove anything here
        "RATE_LIMIT_PER_MINUTE": "0",
        "SESSION_CREATE_PER_MINUTE": "0",
        "MAX_TURNS_IN_FLIGHT_PER_CLIENT": "0",
        "REDIS_MAX_CONNECTIONS": "100",
        "WORKER_STEP_THREADS": "400",
    }
    worker = worker_factory(env, pool="threads", concurrency=350)
    gateway = gateway_factory(env)

    # A client per player: one httpx pool shared by 200 threads can close a connection it has
    # just handed to another thread (encode/httpcore#1110), failing a request with EBADF.
    players: list[Player] = []
    try:
        with ThreadPoolExecutor(max_workers=32) as clients:
            players += clients.map(lambda _: Player(gateway.url, timeout=120), range(SESSIONS))
        # Every player acts at once and waits for its turn, as a crowd would.
        with ThreadPoolExecutor(max_workers=SESSIONS) as crowd:
            finished = list(crowd.map(play_one, players))
        assert all(turn["status"] == "completed" for turn in finished), [
            turn for turn in finished if turn["status"] != "completed"
        ][:3]
        assert all(turn["result"]["narrator"] == "llm" for turn in finished)
        # In one worker process, a hundred and more turns ran at the same time, and their
        # LLM calls really waited together (not one after another behind a lock).
        # A turn's end line is logged just after its commit, which a player can see first.
        wait_until(
            lambda: worker.log().count(" completed in ") >= SESSIONS,
            timeout=60,
            what="the worker to log every turn's end",
        )
        spans = turn_spans(worker.log())
        assert len(spans) == SESSIONS, f"{len(spans)} turns logged, not {SESSIONS}"
        running_at_once = most_turns_running_at_once(spans)
        assert running_at_once >= 100, running_at_once
        assert slow_llm.max_in_flight >= 40, slow_llm.max_in_flight
        # Retries stay the exception.
        assert worker.log().count("LLM call failed") <= SESSIONS // 20
        # One process: the worker's own (a thread pool forks no children).
        assert set(re.findall(r"started in pid (\d+)", worker.log())) == {str(worker.pid)}
    finally:
        for player in players:
            player.close()


def play_one(player: Player) -> dict[str, object]:
    turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
    for _ in range(12):  # up to 6 minutes on a busy machine
        turn = player.turn(turn_id, wait=30)
        if turn["status"] in ("completed", "failed"):
            return turn
    return turn
