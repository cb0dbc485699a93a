"""The LLM narrator through CrewAI's real LLM client against a local OpenAI-compatible
server: streaming, structure repair, retries, fallback, budget, and no key in errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import NarratorUnavailable
from shared.game.dice import Dice
from shared.game.llm.client import ChatClient
from shared.game.llm.narrator import LLMNarrator, parse_choices
from shared.game.rules import choices_for, resolve_turn
from shared.models import GameState
from shared.settings import Settings
from tests.support.fake_llm import FakeLLM, fake_llm

SECRET = "sk-test-very-secret-key"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def delta(self, text: str) -> None:
        self.events.append(("delta", text))

    def restart(self, reason: str) -> None:
        self.events.append(("restart", reason))

    def text_since_last_restart(self) -> str:
        out: list[str] = []
        for kind, value in self.events:
            out = [] if kind == "restart" else [*out, value]
        return "".join(out)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def settings(server: FakeLLM, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "narrator": "llm",
        "llm_model": "openai/story",
        "llm_base_url": server.base_url,
        "llm_api_key": SECRET,
        "llm_timeout": 5,
        "llm_retry_backoff": 0.01,
        "crewai_storage_dir": tmp_path,
        "_env_file": None,
        **overrides,
    }
    return Settings(**values)


def exploring_state() -> tuple[GameState, str]:
    state = GameState(session_id="n" * 24, seed=2)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    for action in ("Play Pip, a halfling rogue", "Accept: The Lost Lantern"):
        state = resolve_turn(state, action, Dice(state.seed, state.version)).state
        state = state.model_copy(update={"version": state.version + 1})
    return state, "Look around"


def narrate(cfg: Settings, recorder: Recorder, state: GameState, action: str) -> Any:
    resolved = resolve_turn(state, action, Dice(state.seed, state.version))
    narrator = LLMNarrator(ChatClient(cfg), cfg, recorder)
    return resolved.state, narrator.narrate(
        resolved.state, action, resolved.outcome, Dice(state.seed, state.version)
    )


def test_streams_the_narrative_and_rewords_the_choices(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    after, narration = narrate(settings(server, tmp_path), recorder, state, action)
    deltas = [v for k, v in recorder.events if k == "delta"]
    assert len(deltas) > 3  # pieces, as generated
    assert "".join(deltas) == narration.narrative
    assert narration.narrative.startswith("Lantern light")
    assert narration.choices == [f"Carefully: {c}" for c in after.current_choices]
    assert narration.source == "llm"
    assert narration.usage is not None and narration.usage.completion_tokens > 0
    last = server.requests[-1]
    assert last["stream"] is True and last["authorization"] == f"Bearer {SECRET}"


def test_literal_phases_keep_the_rules_words(server: FakeLLM, tmp_path: Path) -> None:
    state = GameState(session_id="n" * 24, seed=2)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    _, narration = narrate(
        settings(server, tmp_path), Recorder(), state, "Play Pip, a halfling rogue"
    )
    assert narration.choices is None  # quest titles must stay matchable


def test_garbage_is_repaired_never_passed_on(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    _, narration = narrate(
        settings(server, tmp_path, llm_model="openai/garbage"), recorder, state, action
    )
    assert narration.narrative and "###" not in narration.narrative
    assert narration.choices is None
    assert recorder.text_since_last_restart() == narration.narrative


def test_a_failing_call_is_retried(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    before = len(server.requests)
    _, narration = narrate(
        settings(server, tmp_path, llm_model="openai/flaky"), recorder, state, action
    )
    assert narration.source == "llm"
    assert len(server.requests) - before >= 2
    assert recorder.text_since_last_restart() == narration.narrative


def test_down_falls_back_to_offline_and_says_so(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    before = len(server.requests)
    cfg = settings(server, tmp_path, llm_model="openai/down", llm_retries=2)
    _, narration = narrate(cfg, recorder, state, action)
    assert len(server.requests) - before == 3  # one call and two retries
    assert narration.source == "offline_fallback"
    assert ("restart", "offline_fallback") in recorder.events
    assert recorder.text_since_last_restart() == narration.narrative


def test_down_with_fail_policy_raises_a_readable_error(server: FakeLLM, tmp_path: Path) -> None:
    state, action = exploring_state()
    cfg = settings(server, tmp_path, llm_model="openai/down", llm_fallback="fail", llm_retries=0)
    with pytest.raises(NarratorUnavailable) as caught:
        narrate(cfg, Recorder(), state, action)
    assert SECRET not in str(caught.value) and SECRET not in caught.value.reason
    assert "storyteller" in caught.value.message


def test_a_stalled_server_times_out(server: FakeLLM, tmp_path: Path) -> None:
    state, action = exploring_state()
    cfg = settings(server, tmp_path, llm_model="openai/stall", llm_timeout=0.5, llm_retries=1)
    started = time.monotonic()
    _, narration = narrate(cfg, Recorder(), state, action)
    assert narration.source == "offline_fallback"
    assert time.monotonic() - started < 10


def test_generation_stops_at_the_turn_budget(server: FakeLLM, tmp_path: Path) -> None:
    recorder = Recorder()
    state, action = exploring_state()
    before = len(server.requests)
    _, narration = narrate(settings(server, tmp_path, llm_max_tokens=64), recorder, state, action)
    sent = server.requests[before:]
    assert all(r["max_tokens"] <= 64 for r in sent)
    assert narration.usage.completion_tokens <= 64 * len(sent)


def test_parse_choices_accepts_only_the_expected_shape() -> None:
    assert parse_choices("\n1. Go\n2) Stay\n", 2) == ["Go", "Stay"]
    assert parse_choices("1. Go", 2) is None
    assert parse_choices("1. Go\n2. Go", 2) is None
    assert parse_choices("1. " + "x" * 101 + "\n2. y", 2) is None
    assert parse_choices(None, 2) is None


def test_the_jester_speaks_now_and_then_with_a_seeded_cooldown(
    server: FakeLLM, tmp_path: Path
) -> None:
    cfg = settings(server, tmp_path, jester_cooldown=3)
    narrator = LLMNarrator(ChatClient(cfg), cfg, Recorder())
    state, _ = exploring_state()

    def turns_the_jester_speaks() -> list[int]:
        spoke: list[int] = []
        for turn in range(3, 40):
            last = spoke[-1] if spoke else -1000
            current = state.model_copy(update={"adventure_turn": turn, "jester_last_turn": last})
            if narrator._jester_due(current, Dice(current.seed, turn)):
                spoke.append(turn)
        return spoke

    spoke = turns_the_jester_speaks()
    assert spoke, "the jester never spoke"
    assert all(b - a >= 3 for a, b in zip(spoke, spoke[1:], strict=False))
    assert len(spoke) < 37 // 3 + 1  # now and then, not whenever allowed
    assert turns_the_jester_speaks() == spoke  # seeded: the same game, the same jokes
