"""ChatClient over the service's CrewAI LLM (`HttpChatLLM`) against the loopback fake server:
one shared client, calls at once, each call's usage its own, streams read as they come, no
CrewAI event per chunk, errors named by type and status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.llm_events import LLMStreamChunkEvent
from crewai.llms.base_llm import BaseLLM

from shared.errors import NarratorUnavailable
from shared.game.llm.client import ChatClient, shared_llm
from shared.game.llm.http_llm import HttpChatLLM, resolve_model
from tests.shared.game.test_llm_narrator import settings
from tests.support.fake_llm import NARRATIVE, FakeLLM, fake_llm

MESSAGES = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Go"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def test_calls_share_one_client_and_count_their_own_usage(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(server, tmp_path)
    client = ChatClient(cfg)
    first = client.complete(MESSAGES, max_tokens=200)
    second = client.complete(MESSAGES, max_tokens=200)
    assert shared_llm(cfg) is shared_llm(cfg)
    assert first.usage == second.usage  # the same reply, counted once each, not summed
    assert first.usage.completion_tokens > 0 and first.usage.prompt_tokens == 50
    streamed: list[str] = []
    short = client.complete(MESSAGES, max_tokens=5, on_chunk=streamed.append)
    assert streamed and "".join(streamed) == short.text
    assert short.usage.completion_tokens == 5 and len(short.text.split(" ")) == 5
    assert server.requests[-1]["model"] == "story"  # CrewAI's provider prefix stripped
    assert server.requests[-1]["authorization"] == f"Bearer {cfg.llm_api_key.get_secret_value()}"  # type: ignore[union-attr]


def test_calls_at_the_same_time_run_at_once_on_the_shared_client(
    server: FakeLLM, tmp_path: Path
) -> None:
    client = ChatClient(settings(server, tmp_path, llm_model="openai/wait-5", llm_timeout=30))
    server.max_in_flight = 0
    barrier = threading.Barrier(4)
    replies: list[str] = []

    def call() -> None:
        barrier.wait(timeout=30)
        replies.append(client.complete(MESSAGES, max_tokens=200).text)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert server.max_in_flight == 4
    assert replies == [NARRATIVE] * 4


def test_one_chunk_per_token_reaches_the_sink_and_no_crewai_event(
    server: FakeLLM, tmp_path: Path
) -> None:
    events: list[Any] = []
    streamed: list[str] = []
    with crewai_event_bus.scoped_handlers():

        @crewai_event_bus.on(LLMStreamChunkEvent)
        def count(_source: Any, event: LLMStreamChunkEvent) -> None:
            events.append(event)

        reply = ChatClient(settings(server, tmp_path, llm_model="openai/tokens")).complete(
            MESSAGES, max_tokens=200, on_chunk=streamed.append
        )
    assert reply.text == NARRATIVE and "".join(streamed) == NARRATIVE
    assert len(streamed) == len(NARRATIVE.split(" "))
    assert events == []


def test_a_server_that_ignores_streaming_gives_the_whole_reply(
    server: FakeLLM, tmp_path: Path
) -> None:
    streamed: list[str] = []
    reply = ChatClient(settings(server, tmp_path, llm_model="openai/nostream")).complete(
        MESSAGES, max_tokens=200, on_chunk=streamed.append
    )
    assert reply.text == NARRATIVE and streamed == []  # the narrator tells it at once
    assert reply.usage.completion_tokens == len(NARRATIVE.split(" "))


def test_errors_are_retried_then_named_by_type_and_status(server: FakeLLM, tmp_path: Path) -> None:
    retried: list[int] = []
    client = ChatClient(settings(server, tmp_path, llm_model="openai/down", llm_retries=2))
    with pytest.raises(NarratorUnavailable) as failure:
        client.complete(MESSAGES, max_tokens=50, on_retry=retried.append)
    assert retried == [2, 3]
    assert failure.value.reason == "LLMCallFailed (HTTP 503)"


def test_a_rate_limited_reply_carries_its_retry_after(server: FakeLLM, tmp_path: Path) -> None:
    from shared.game.llm.http_llm import LLMCallFailed

    llm = shared_llm(settings(server, tmp_path, llm_model="openai/limited"))
    with pytest.raises(LLMCallFailed) as limited:
        llm.complete(MESSAGES, max_tokens=50)
    assert (limited.value.status_code, limited.value.retry_after) == (429, 7.0)


@pytest.mark.parametrize("model", ["cutoff", "stream-error"])
def test_a_reply_cut_off_or_failing_mid_stream_is_a_failed_call(
    server: FakeLLM, tmp_path: Path, model: str
) -> None:
    client = ChatClient(settings(server, tmp_path, llm_model=f"openai/{model}", llm_retries=0))
    streamed: list[str] = []
    with pytest.raises(NarratorUnavailable) as failure:
        client.complete(MESSAGES, max_tokens=200, on_chunk=streamed.append)
    assert failure.value.reason == "LLMCallFailed"
    assert streamed  # it had begun: the narrator says so and starts over


def test_a_sink_that_cannot_pass_a_piece_on_loses_the_piece_not_the_call(
    server: FakeLLM, tmp_path: Path
) -> None:
    taken: list[str] = []

    def flaky_sink(text: str) -> None:
        if len(taken) == 1:
            taken.append("")
            raise TimeoutError("the store is slow")
        taken.append(text)

    reply = ChatClient(settings(server, tmp_path, llm_retries=0)).complete(
        MESSAGES, max_tokens=200, on_chunk=flaky_sink
    )
    assert reply.text == NARRATIVE  # the whole reply, for the turn's result
    assert len(taken) > 3


def test_a_timeout_is_named(server: FakeLLM, tmp_path: Path) -> None:
    client = ChatClient(
        settings(server, tmp_path, llm_model="openai/stall", llm_timeout=0.3, llm_retries=0)
    )
    with pytest.raises(NarratorUnavailable) as failure:
        client.complete(MESSAGES, max_tokens=50, on_chunk=lambda _: None)
    assert failure.value.reason == "ReadTimeout"


def test_it_is_a_crewai_llm_an_agent_can_call(server: FakeLLM, tmp_path: Path) -> None:
    llm = HttpChatLLM(model="openai/story", base_url=server.base_url, api_key="k")
    try:
        assert isinstance(llm, BaseLLM)
        assert llm.call("Tell me a story") == NARRATIVE
        assert llm.get_token_usage_summary().completion_tokens == len(NARRATIVE.split(" "))
    finally:
        llm.close()


@pytest.mark.parametrize(
    ("model", "base_url", "expected"),
    [
        ("openai/gpt-4o-mini", None, ("gpt-4o-mini", "https://api.openai.com/v1")),
        ("openai/llama3.1", "http://ollama:11434/v1", ("llama3.1", "http://ollama:11434/v1")),
        ("ollama/llama3.1", None, ("llama3.1", "http://localhost:11434/v1")),
        ("openai/anthropic/claude-3.5-haiku", "https://openrouter.ai/api/v1",
         ("anthropic/claude-3.5-haiku", "https://openrouter.ai/api/v1")),
        # With a base URL of a gateway's, anthropic/… is its model name (LiteLLM-style)
        ("anthropic/claude-3.5-haiku", "https://gw/v1", ("anthropic/claude-3.5-haiku", "https://gw/v1")),
        ("mistral/mistral-large", "https://gw/v1", ("mistral/mistral-large", "https://gw/v1")),
        ("gpt-4o-mini", None, ("gpt-4o-mini", "https://api.openai.com/v1")),
    ],
)  # fmt: skip
def test_model_names_keep_crewais_provider_prefix(
    model: str, base_url: str | None, expected: tuple[str, str]
) -> None:
    assert resolve_model(model, base_url) == expected


def test_crewais_console_listener_is_detached(server: FakeLLM, tmp_path: Path) -> None:
    # It kept every chunk of the process in one buffer, read back whole on each chunk.
    from crewai.events.event_listener import event_listener

    before = event_listener.text_stream.getvalue()
    ChatClient(settings(server, tmp_path)).complete(
        MESSAGES, max_tokens=200, on_chunk=lambda _: None
    )
    assert event_listener.text_stream.getvalue() == before
