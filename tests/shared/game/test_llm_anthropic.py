"""`LLM_MODEL=anthropic/<model>`: Anthropic's Messages API through the service's CrewAI LLM,
against the loopback fake: streamed, counted, limited and fallen back like any endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import NarratorUnavailable
from shared.game.llm.anthropic import ANTHROPIC_VERSION
from shared.game.llm.client import ChatClient
from shared.game.llm.http_llm import LLMCallFailed, resolve_model, speaks_anthropic
from shared.settings import Settings
from tests.shared.game.test_llm_narrator import Recorder, exploring_state, narrate
from tests.support.fake_llm import NARRATIVE, FakeLLM, fake_llm

MESSAGES = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Go"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def claude(server: FakeLLM, tmp_path: Path, model: str = "story", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "narrator": "llm",
        "llm_model": f"anthropic/{model}",
        # A proxy of the Messages API (its base URL has no /v1: the client adds /v1/messages).
        "llm_base_url": f"http://127.0.0.1:{server.port}",
        "llm_protocol": "anthropic",
        "anthropic_api_key": "sk-ant-test",
        "llm_timeout": 5,
        "llm_retry_backoff": 0.01,
        "crewai_storage_dir": tmp_path,
        "_env_file": None,
        **overrides,
    }
    return Settings(**values)


def test_a_streamed_reply_in_the_messages_protocol(server: FakeLLM, tmp_path: Path) -> None:
    streamed: list[str] = []
    reply = ChatClient(claude(server, tmp_path, "tokens")).complete(
        MESSAGES, max_tokens=200, on_chunk=streamed.append
    )
    assert reply.text == NARRATIVE and "".join(streamed) == NARRATIVE
    assert len(streamed) == len(NARRATIVE.split(" "))  # as they came
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (50, len(NARRATIVE.split(" ")))
    assert usage.model == "anthropic/tokens" and usage.time_to_first_token is not None
    sent = server.requests[-1]
    assert sent["protocol"] == "anthropic" and sent["model"] == "tokens"
    assert sent["x-api-key"] == "sk-ant-test" and sent["anthropic-version"] == ANTHROPIC_VERSION
    assert sent["system"] == "You tell stories."  # a field of its own, not a message
    assert sent["messages"] == [{"role": "user", "content": "Go"}]
    assert sent["max_tokens"] == 200 and sent["stream"] is True


def test_a_whole_reply_and_llm_api_key_first(server: FakeLLM, tmp_path: Path) -> None:
    cfg = claude(server, tmp_path, llm_api_key="sk-ant-primary")
    reply = ChatClient(cfg).complete(MESSAGES, max_tokens=200)
    assert reply.text == NARRATIVE and reply.usage.total_tokens == 50 + len(NARRATIVE.split(" "))
    assert server.requests[-1]["x-api-key"] == "sk-ant-primary"


def test_the_narrator_tells_a_turn_on_claude(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    after, narration = narrate(claude(server, tmp_path), recorder, state, action)
    assert narration.source == "llm" and narration.lines[0] == ("narrator", NARRATIVE)
    assert narration.choices == [f"Carefully: {c}" for c in after.current_choices]
    assert recorder.said_by("narrator") == NARRATIVE
    assert narration.usage is not None and "narrator" in narration.usage.agents


@pytest.mark.parametrize("model", ["cutoff", "stream-error"])
def test_a_stream_cut_off_or_failing_is_a_failed_call(
    server: FakeLLM, tmp_path: Path, model: str
) -> None:
    client = ChatClient(claude(server, tmp_path, model, llm_retries=0))
    with pytest.raises(NarratorUnavailable) as failure:
        client.complete(MESSAGES, max_tokens=200, on_chunk=lambda _: None)
    assert failure.value.reason == "LLMCallFailed"


def test_rate_limits_and_overload_are_named_and_fall_back(server: FakeLLM, tmp_path: Path) -> None:
    from shared.game.llm.client import shared_llm

    with pytest.raises(LLMCallFailed) as limited:
        shared_llm(claude(server, tmp_path, "limited")).complete(MESSAGES, max_tokens=50)
    assert (limited.value.status_code, limited.value.retry_after) == (429, 7.0)
    fallback = [{"model": "openai/story", "base_url": server.base_url}]
    cfg = claude(server, tmp_path, "down", llm_retries=0, llm_fallbacks=fallback)
    reply = ChatClient(cfg).complete(MESSAGES, max_tokens=50)
    assert reply.text == NARRATIVE and reply.usage.model == "openai/story"
    statuses = [r.get("protocol") for r in server.requests[-2:]]
    assert statuses == ["anthropic", None]  # Claude overloaded (529), then the fallback


def test_anthropic_names_base_urls_and_protocols() -> None:
    assert resolve_model("anthropic/claude-3-5-haiku-latest", None) == (
        "claude-3-5-haiku-latest",
        "https://api.anthropic.com",
    )
    assert speaks_anthropic("anthropic/claude-3-5-haiku-latest", None)
    assert speaks_anthropic("anthropic/claude-x", "https://api.anthropic.com/v1")
    # anthropic/… on another base URL stays a gateway's model name unless told otherwise.
    assert not speaks_anthropic("anthropic/claude-x", "http://litellm:4000/v1")
    assert resolve_model("anthropic/claude-x", "http://litellm:4000/v1") == (
        "anthropic/claude-x",
        "http://litellm:4000/v1",
    )
    assert speaks_anthropic("anthropic/claude-x", "http://proxy:8080", "anthropic")
    assert resolve_model("anthropic/claude-x", "http://proxy:8080", "anthropic") == (
        "claude-x",
        "http://proxy:8080",
    )
    assert not speaks_anthropic("anthropic/claude-x", None, "openai")
    # Through an OpenRouter-style gateway, Claude is an OpenAI-compatible model name.
    assert resolve_model("openai/anthropic/claude-3.5-haiku", "https://openrouter.ai/api/v1") == (
        "anthropic/claude-3.5-haiku",
        "https://openrouter.ai/api/v1",
    )
