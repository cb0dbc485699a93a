"""ChatClient's pool of CrewAI LLM clients: reused call after call, never shared by two calls
at once, dropped after a failure, and each call's usage its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import NarratorUnavailable
from shared.game.llm.client import ChatClient, LLMPool
from tests.shared.game.test_llm_narrator import settings
from tests.support.fake_llm import FakeLLM, fake_llm

MESSAGES = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Go"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def test_calls_one_after_another_reuse_one_client_and_count_their_own_usage(
    server: FakeLLM, tmp_path: Path
) -> None:
    pool = LLMPool()
    client = ChatClient(settings(server, tmp_path), pool=pool)
    first = client.complete(MESSAGES, max_tokens=200)
    second = client.complete(MESSAGES, max_tokens=200)
    assert pool.idle() == 1
    assert first.usage == second.usage  # the same reply, counted once each, not summed
    assert first.usage.completion_tokens > 0
    # The same client again, for a streamed call with another budget: both are per call.
    streamed: list[str] = []
    short = client.complete(MESSAGES, max_tokens=5, on_chunk=streamed.append)
    assert streamed and "".join(streamed) == short.text
    assert short.usage.completion_tokens == 5 and len(short.text.split(" ")) == 5
    assert pool.idle() == 1


def test_calls_at_the_same_time_each_get_a_client_of_their_own(
    server: FakeLLM, tmp_path: Path
) -> None:
    pool = LLMPool()
    client = ChatClient(
        settings(server, tmp_path, llm_model="openai/wait-5", llm_timeout=30), pool=pool
    )
    server.max_in_flight = 0
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait(timeout=30)
        client.complete(MESSAGES, max_tokens=200)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # The four calls waited on the server together: four clients, one each, now idle.
    assert server.max_in_flight == 4
    assert pool.idle() == 4


def test_a_client_whose_call_failed_is_not_lent_again(server: FakeLLM, tmp_path: Path) -> None:
    pool = LLMPool()
    down = settings(server, tmp_path, llm_model="openai/down", llm_retries=1)
    client = ChatClient(down, pool=pool)
    with pytest.raises(NarratorUnavailable):
        client.complete(MESSAGES, max_tokens=200)
    assert pool.idle() == 0


def test_crewais_console_listener_is_detached_from_the_stream(
    server: FakeLLM, tmp_path: Path
) -> None:
    # It kept every chunk of the process in one buffer, read back whole on each chunk.
    from crewai.events.event_listener import event_listener

    before = event_listener.text_stream.getvalue()
    streamed: list[str] = []
    ChatClient(settings(server, tmp_path)).complete(
        MESSAGES, max_tokens=200, on_chunk=streamed.append
    )
    assert len(streamed) > 3  # the service's own listener still hears every chunk
    assert event_listener.text_stream.getvalue() == before
