"""The narrator's client under provider limits, against the loopback fake: a Retry-After
slows every client sharing the gate, the budget paces calls, an open circuit and a wait past
`LLM_MAX_WAIT` send calls to the next endpoint at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.backends.provider_gate import RedisGate
from shared.backends.sync_client import connect
from shared.errors import NarratorUnavailable
from shared.game.llm.client import ChatClient, gate_limits
from shared.game.llm.limits import LocalGate
from shared.settings import Settings
from tests.shared.game.test_llm_narrator import settings
from tests.support.fake_llm import NARRATIVE, FakeLLM, fake_llm

MESSAGES = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Go"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


class Clock:
    """Stands in for `time.sleep`: records the waits instead of waiting them."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def fallback_to_story(server: FakeLLM) -> list[dict[str, str]]:
    return [{"model": "openai/story", "base_url": server.base_url}]


def calls_to(server: FakeLLM, model: str) -> int:
    return sum(1 for request in server.requests if request["model"] == model)


def test_a_retry_after_slows_every_worker_sharing_the_store(
    server: FakeLLM, tmp_path: Path, redis_url: str
) -> None:
    cfg = settings(server, tmp_path, llm_model="openai/limited-3", llm_retries=0)
    # Two workers: two clients, each with its own connection to the one store.
    stores = [connect(redis_url), connect(redis_url)]
    try:
        first, second = (
            ChatClient(cfg, sleep=Clock(), gate=RedisGate(store, gate_limits(cfg)))
            for store in stores
        )
        with pytest.raises(NarratorUnavailable) as failure:
            first.complete(MESSAGES, max_tokens=50)
        assert failure.value.reason == "LLMCallFailed (HTTP 429)"
        waits: list[tuple[str, float]] = []
        with pytest.raises(NarratorUnavailable):
            second.complete(MESSAGES, max_tokens=50, on_wait=lambda *wait: waits.append(wait))
        [(reason, seconds)] = waits
        assert reason == "cooldown" and 1 < seconds <= 3
    finally:
        for store in stores:
            store.close()


def test_the_budget_paces_calls_and_says_so(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(server, tmp_path, llm_rpm=60, llm_burst_seconds=1)
    clock = Clock()
    client = ChatClient(cfg, sleep=clock)
    waits: list[tuple[str, float]] = []
    for _ in range(3):
        reply = client.complete(MESSAGES, max_tokens=50, on_wait=lambda *w: waits.append(w))
        assert reply.text == NARRATIVE
    assert [reason for reason, _ in waits] == ["budget", "budget"]
    assert 0.5 < waits[0][1] <= 1 and 1.5 < waits[1][1] <= 2
    assert clock.slept == [seconds for _, seconds in waits]


def test_a_wait_past_the_limit_goes_to_the_fallback(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(
        server,
        tmp_path,
        llm_model="openai/limited",  # Retry-After: 7
        llm_max_wait=2,
        llm_retries=1,
        llm_fallbacks=fallback_to_story(server),
    )
    retried: list[int] = []
    clock = Clock()
    before = calls_to(server, "limited")
    reply = ChatClient(cfg, sleep=clock).complete(MESSAGES, max_tokens=50, on_retry=retried.append)
    assert reply.text == NARRATIVE
    assert calls_to(server, "limited") - before == 1  # not tried again within 7 s
    assert server.requests[-1]["model"] == "story"
    assert retried == [2] and clock.slept == []


def test_an_open_circuit_sends_calls_to_the_fallback_at_once(
    server: FakeLLM, tmp_path: Path
) -> None:
    cfg = settings(
        server,
        tmp_path,
        llm_model="openai/down",
        llm_retries=0,
        llm_circuit_failures=2,
        llm_fallbacks=fallback_to_story(server),
    )
    client = ChatClient(cfg, sleep=Clock())
    before = calls_to(server, "down")
    for _ in range(4):
        assert client.complete(MESSAGES, max_tokens=50).text == NARRATIVE
    assert calls_to(server, "down") - before == 2  # then the circuit opened


def test_timeouts_open_the_circuit_and_then_fail_fast(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(
        server,
        tmp_path,
        llm_model="openai/stall",
        llm_timeout=0.3,
        llm_retries=0,
        llm_circuit_failures=1,
    )
    client = ChatClient(cfg)
    with pytest.raises(NarratorUnavailable) as first:
        client.complete(MESSAGES, max_tokens=50)
    assert first.value.reason == "ReadTimeout"
    before = calls_to(server, "stall")
    with pytest.raises(NarratorUnavailable) as second:
        client.complete(MESSAGES, max_tokens=50)
    assert second.value.reason == "circuit_open"
    assert calls_to(server, "stall") == before


def test_fallbacks_are_read_and_validated_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    given = [{"model": "openai/llama3.1", "base_url": "http://ollama:11434/v1", "rpm": 30}]
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps(given))
    [fallback] = Settings(_env_file=None).llm_fallbacks  # type: ignore[call-arg]
    assert (fallback.model, fallback.base_url, fallback.rpm) == (
        "openai/llama3.1",
        given[0]["base_url"],
        30,
    )
    monkeypatch.setenv("LLM_FALLBACKS", '[{"base_url": "http://x/v1"}]')
    with pytest.raises(ValueError, match="model"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_clients_own_gate_is_its_own(server: FakeLLM, tmp_path: Path) -> None:
    cfg: Any = settings(server, tmp_path)
    assert isinstance(ChatClient(cfg).gate, LocalGate)
    assert ChatClient(cfg).gate is not ChatClient(cfg).gate


@pytest.mark.parametrize(("given", "taken"), [("inf", None), ("100000", 300.0), ("-5", 0.0)])
def test_a_retry_after_is_taken_within_bounds(
    server: FakeLLM, tmp_path: Path, given: str, taken: float | None
) -> None:
    from shared.game.llm.client import shared_llm
    from shared.game.llm.http_llm import LLMCallFailed

    llm = shared_llm(settings(server, tmp_path, llm_model=f"openai/limited-{given}"))
    with pytest.raises(LLMCallFailed) as limited:
        llm.complete(MESSAGES, max_tokens=50)
    assert limited.value.retry_after == taken


def test_a_reply_without_usage_is_counted_at_an_estimate(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(server, tmp_path, llm_model="openai/story+nousage", llm_tpm=600)
    client = ChatClient(cfg, sleep=Clock())
    reply = client.complete(MESSAGES, max_tokens=200, on_chunk=lambda _: None)
    assert reply.text == NARRATIVE
    assert reply.usage.completion_tokens == len(NARRATIVE) // 4  # not 0: budgets see it
    assert reply.usage.total_tokens > reply.usage.completion_tokens
    # The bucket keeps what was used, not nothing: at 10 tokens a second, ~40 used hold the
    # next call's slot ~4 s on (with nothing kept it would go at once).
    endpoint = client.endpoints[0]
    assert client.gate.admit(endpoint.id, 100, endpoint.budget).wait > 1


def test_a_refused_call_gives_its_tokens_back(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(server, tmp_path, llm_model="openai/down", llm_retries=0, llm_tpm=600)
    client = ChatClient(cfg, sleep=Clock())
    with pytest.raises(NarratorUnavailable):
        client.complete(MESSAGES, max_tokens=500)  # ~500 tokens booked: 50 s of budget
    endpoint = client.endpoints[0]
    assert client.gate.admit(endpoint.id, 50, endpoint.budget).wait == 0  # given back


def test_a_request_the_endpoint_refuses_is_not_retried_nor_counted(
    server: FakeLLM, tmp_path: Path
) -> None:
    cfg = settings(
        server,
        tmp_path,
        llm_model="openai/refused",
        llm_retries=3,
        llm_circuit_failures=1,
        llm_fallbacks=fallback_to_story(server),
    )
    client = ChatClient(cfg, sleep=Clock())
    before = calls_to(server, "refused")
    for _ in range(2):
        assert client.complete(MESSAGES, max_tokens=50).text == NARRATIVE  # the fallback
    # Tried once each time (no retry), and its circuit never opened (tried the second time).
    assert calls_to(server, "refused") - before == 2


def test_the_endpoint_repr_hides_its_key(server: FakeLLM, tmp_path: Path) -> None:
    client = ChatClient(settings(server, tmp_path))
    assert client.endpoints[0].api_key and client.endpoints[0].api_key not in repr(client.endpoints)
