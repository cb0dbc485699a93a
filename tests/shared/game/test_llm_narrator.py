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
from shared.game.llm.narrator import LLMNarrator
from shared.game.narrator import OfflineNarrator
from shared.game.rules import choices_for, resolve_turn
from shared.models import GamePhase, GameState, Moment
from shared.settings import Settings
from tests.support.fake_llm import FakeLLM, fake_llm

SECRET = "sk-test-very-secret-key"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.speakers: list[str] = []  # of each delta

    def delta(self, text: str, speaker: str = "narrator") -> None:
        self.events.append(("delta", text))
        self.speakers.append(speaker)

    def said_by(self, speaker: str) -> str:
        deltas = [value for kind, value in self.events if kind == "delta"]
        return "".join(d for d, s in zip(deltas, self.speakers, strict=True) if s == speaker)

    def restart(self, reason: str) -> None:
        self.events.append(("restart", reason))

    def waiting(self, reason: str, seconds: float) -> None:
        self.events.append(("waiting", reason))

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
    state = GameState(session_id="n" * 24, seed=3)
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
    state = GameState(session_id="n" * 24, seed=3)
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


def test_the_fallback_tells_the_turn_with_the_agents_chosen_for_it(
    server: FakeLLM, tmp_path: Path
) -> None:
    state, action = exploring_state()
    cfg = settings(server, tmp_path, llm_model="openai/down", llm_retries=0, jester_cooldown=1)
    spoke = set()
    for turn in range(40):  # some turns with the Jester, some without
        current = state.model_copy(update={"adventure_turn": turn, "version": turn})
        _, narration = narrate(cfg, Recorder(), current, action)
        assert narration.source == "offline_fallback" and narration.agents[-1] == "narrator"
        assert narration.jester_spoke == ("jester" in narration.agents)
        assert narration.jester_spoke == ("The Jester pipes up" in narration.narrative)
        spoke.add(narration.jester_spoke)
    assert spoke == {True, False}


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


def system_roles(requests: list[dict[str, Any]]) -> list[str]:
    return [r["messages"][0]["content"].split(",")[0] for r in requests]


def test_each_routed_agent_is_asked_on_the_llm(server: FakeLLM, tmp_path: Path) -> None:
    cfg = settings(server, tmp_path, jester_cooldown=1000)
    # The notice board: the quest designer writes it (backstage), the innkeeper pitches, the
    # narrator tells.
    state = GameState(session_id="n" * 24, seed=3)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    before = len(server.requests)
    _, narration = narrate(cfg, Recorder(), state, "Play Pip, a halfling rogue")
    assert narration.agents == ("innkeeper", "narrator")
    assert system_roles(server.requests[before:]) == [
        "You are the quest designer of Pocket Portals",
        "You are Marta",
        "You are the Narrator of Pocket Portals",
    ]
    # The epilogue: the chronicler records, the narrator tells the ending from it.
    ending, _ = exploring_state()
    ending = ending.model_copy(
        update={
            "phase": GamePhase.EPILOGUE,
            "adventure_moments": [Moment(kind="quest_taken", text="took up the quest")],
        }
    )
    ending = ending.model_copy(update={"current_choices": choices_for(ending)})
    before = len(server.requests)
    after, narration = narrate(cfg, Recorder(), ending, "Hear how the tale ends")
    assert after.adventure_completed and narration.agents == ("chronicler", "narrator")
    asked = server.requests[before:]
    assert system_roles(asked) == [
        "You are the Chronicler",
        "You are the Narrator of Pocket Portals",
    ]
    assert "took up the quest" in asked[0]["messages"][1]["content"]
    assert "The Chronicler records:" in asked[1]["messages"][1]["content"]


def test_the_keeper_and_the_jester_are_asked_on_the_llm(server: FakeLLM, tmp_path: Path) -> None:
    """Play on from the quest until a turn rolled dice (the Keeper speaks) and a turn drew the
    Jester (cooldown 1): each is asked with its own role and prompt, and the Narrator is told
    what it said."""
    cfg = settings(server, tmp_path, jester_cooldown=1)
    state, _ = exploring_state()
    heard: dict[str, list[dict[str, Any]]] = {}
    told: dict[str, str] = {}  # what the Narrator was asked in a turn the agent spoke
    for _ in range(30):
        action = state.current_choices[0]
        before = len(server.requests)
        after, narration = narrate(cfg, Recorder(), state, action)
        asked = server.requests[before:]
        assert narration.source == "llm" and narration.agents[-1] == "narrator"
        assert len(asked) == len(narration.agents)  # one call per agent, the Narrator's last
        for agent, request in zip(narration.agents, asked, strict=True):
            heard.setdefault(agent, request["messages"])
            told.setdefault(agent, asked[-1]["messages"][1]["content"])
        state = after.model_copy(update={"version": state.version + 1})
        if {"keeper", "jester"} <= heard.keys() or state.adventure_completed:
            break
    assert {"keeper", "jester"} <= heard.keys(), f"only {sorted(heard)} spoke in 30 turns"
    keeper, jester = heard["keeper"], heard["jester"]
    assert keeper[0]["content"].startswith("You are the Game Keeper")
    assert keeper[1]["content"].startswith("Rolls: ")
    assert jester[0]["content"].startswith("You are The Jester")
    assert jester[1]["content"].startswith("The hero tried: ")
    # The others' words reach the Narrator quoted as data (the Jester may echo the player).
    assert "The Game Keeper says: <agent_words>" in told["keeper"]
    assert "The Jester quips: <agent_words>" in told["jester"]


def test_usage_is_counted_per_agent_with_the_model_and_first_token(
    server: FakeLLM, tmp_path: Path
) -> None:
    from prometheus_client import REGISTRY

    def counted(agent: str, kind: str) -> float:
        labels = {"model": "openai/story", "agent": agent, "kind": kind}
        return REGISTRY.get_sample_value("pocket_portals_llm_tokens_total", labels) or 0.0

    cfg = settings(server, tmp_path)
    state = GameState(session_id="n" * 24, seed=3)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    asked = ("quest_designer", "innkeeper", "narrator")
    before = {agent: counted(agent, "completion") for agent in asked}
    _, narration = narrate(cfg, Recorder(), state, "Play Pip, a halfling rogue")
    usage = narration.usage
    assert narration.agents == ("innkeeper", "narrator")
    assert usage.model == "openai/story" and usage.time_to_first_token is not None
    # The quest designer's tokens are the turn's too (and so the daily budgets').
    assert set(usage.agents) == set(asked)
    assert usage.prompt_tokens == sum(a.prompt_tokens for a in usage.agents.values())
    assert usage.completion_tokens == sum(a.completion_tokens for a in usage.agents.values())
    for agent, tokens in usage.agents.items():
        assert tokens.completion_tokens > 0
        assert counted(agent, "completion") - before[agent] == tokens.completion_tokens


def test_each_agents_words_are_streamed_and_listed_under_its_name(
    server: FakeLLM, tmp_path: Path
) -> None:
    recorder = Recorder()
    state = GameState(session_id="n" * 24, seed=3)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    _, narration = narrate(
        settings(server, tmp_path), recorder, state, "Play Pip, a halfling rogue"
    )
    speakers = [speaker for speaker, _ in narration.lines]
    assert speakers[0] == "narrator" and "innkeeper" in speakers
    assert narration.narrative == "\n\n".join(text for _, text in narration.lines)
    said = dict(narration.lines)
    assert (
        said["innkeeper"]
        == "The innkeeper says: Mind the marsh road, love, and pay before you leave."
    )
    assert recorder.said_by("narrator") == said["narrator"]
    assert recorder.said_by("innkeeper") == "\n\n" + said["innkeeper"]
    # In the order told: the Narrator's story, then the others'.
    assert recorder.speakers.index("innkeeper") > max(
        i for i, s in enumerate(recorder.speakers) if s == "narrator"
    )


def test_the_offline_narrator_lists_its_lines_too() -> None:
    state, action = exploring_state()
    resolved = resolve_turn(state, action, Dice(state.seed, state.version))
    narration = OfflineNarrator().narrate(
        resolved.state, action, resolved.outcome, Dice(state.seed, state.version)
    )
    assert narration.lines[0][0] == "narrator"
    assert narration.narrative == "\n\n".join(text for _, text in narration.lines)
