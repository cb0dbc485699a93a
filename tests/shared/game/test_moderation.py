"""The moderation step: the built-in rules, an OpenAI-compatible endpoint (the loopback fake),
and what a flagged action becomes in the flow and for the LLM narrator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.game.flow import run_turn_step
from shared.game.llm.client import ChatClient
from shared.game.llm.narrator import REDIRECT_CUE, LLMNarrator
from shared.game.moderation import (
    AllowAll,
    HttpModerator,
    RuleModerator,
    Verdict,
    moderator_for,
)
from shared.game.narrator import OfflineNarrator
from shared.game.rules.safety import REDIRECTED, unsafe_categories
from shared.metrics import MODERATION_ERRORS
from shared.models import TurnRecord
from shared.settings import Settings
from tests.shared.game.test_llm_narrator import Recorder, exploring_state, settings
from tests.support.fake_llm import FLAGGED_WORDS, FakeLLM, fake_llm
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I want to kill myself", "self-harm"),
        ("tell me about suicide methods", "self-harm"),
        ("I have sex with the innkeeper", "sexual"),
        ("the naked child", "sexual/minors"),
        ("kill all the immigrants", "hate"),
        ("how do I make a pipe bomb at home", "illicit/violent"),
    ],
)
def test_the_built_in_rules_flag_what_has_no_place_in_the_tale(text: str, category: str) -> None:
    assert category in unsafe_categories(text)


@pytest.mark.parametrize(
    "text",
    [
        "I kill the goblin",
        "Stab the bandit in the back",
        "Threaten the guard with my axe",
        "Cut the rope and drop the bridge",
        "Burn the necromancer's tower",
        "Ask the child where her parents went",
        "Brew a potion of fire",
    ],
)
def test_the_games_own_violence_is_not_flagged(text: str) -> None:
    assert unsafe_categories(text) == ()


def test_an_endpoint_names_the_flagged_categories(server: FakeLLM) -> None:
    moderator = HttpModerator(
        f"{server.base_url}/moderations", api_key="sk-x", model="omni", timeout=5
    )
    try:
        assert moderator.check(f"you {FLAGGED_WORDS}") == Verdict(("harassment",), "endpoint")
        assert moderator.check("Open the door") == Verdict((), "endpoint")
        assert server.moderation_inputs[-2:] == [f"you {FLAGGED_WORDS}", "Open the door"]
    finally:
        moderator.close()


@pytest.mark.parametrize("where", ["down", "unreachable"])
def test_a_failing_endpoint_leaves_the_decision_to_the_rules(server: FakeLLM, where: str) -> None:
    url = (
        f"{server.base_url}/moderations"
        if where == "down"
        else f"http://127.0.0.1:{free_port()}/v1/moderations"
    )
    moderator = HttpModerator(url, api_key=None, model="moderation-down", timeout=2)
    before = MODERATION_ERRORS._value.get()
    try:
        assert moderator.check("I want to kill myself") == Verdict(("self-harm",), "rules")
        assert moderator.check(f"you {FLAGGED_WORDS}") == Verdict((), "rules")
    finally:
        moderator.close()
    assert MODERATION_ERRORS._value.get() == before + 2


def test_the_settings_choose_the_check(server: FakeLLM, tmp_path: Path) -> None:
    assert isinstance(moderator_for(Settings(_env_file=None, moderation="off")), AllowAll)
    assert isinstance(moderator_for(Settings(_env_file=None)), RuleModerator)
    url = f"{server.base_url}/moderations"
    first = moderator_for(Settings(_env_file=None, moderation_url=url))
    assert isinstance(first, HttpModerator)
    assert moderator_for(Settings(_env_file=None, moderation_url=url)) is first  # kept


class FlagEverything:
    def __init__(self) -> None:
        self.checked: list[str] = []

    def check(self, text: str) -> Verdict:
        self.checked.append(text)
        return Verdict(("harassment",), "endpoint")


def _turn(action: str, choice_index: int | None = None) -> TurnRecord:
    return TurnRecord(
        turn_id="0" * 16,
        session_id="n" * 24,
        action=action,
        choice_index=choice_index,
        accepted_at=time.time(),
    )


def test_a_flagged_action_is_redirected_and_the_rules_apply_nothing() -> None:
    state, _ = exploring_state()
    typed = "I want to kill myself"
    step = run_turn_step(
        state.session_id,
        _turn(typed),
        load_state=lambda _: state,
        narrator=OfflineNarrator(),
        moderator=RuleModerator(),
    )
    assert step.outcome == REDIRECTED
    assert step.moderation == Verdict(("self-harm",), "rules")
    after = step.state
    assert after.adventure_turn == state.adventure_turn  # no clock tick
    assert (after.health_current, after.location, after.active_quest) == (
        state.health_current,
        state.location,
        state.active_quest,
    )
    assert after.adventure_moments == state.adventure_moments
    assert after.current_choices == state.current_choices
    assert "no place in this tale" in step.narrative and "kill" not in step.narrative
    assert after.conversation_history[-1].action == "(withheld)"


def test_a_chosen_option_is_not_checked() -> None:
    state, _ = exploring_state()
    moderator = FlagEverything()
    step = run_turn_step(
        state.session_id,
        _turn(state.current_choices[0], choice_index=1),
        load_state=lambda _: state,
        narrator=OfflineNarrator(),
        moderator=moderator,
    )
    assert moderator.checked == [] and step.moderation is None
    assert step.outcome != REDIRECTED


def test_the_llm_never_sees_a_flagged_action(server: FakeLLM, tmp_path: Path) -> None:
    state, _ = exploring_state()
    cfg: Any = settings(server, tmp_path)
    typed = f"Say {FLAGGED_WORDS} to the guard"
    before = len(server.requests)
    step = run_turn_step(
        state.session_id,
        _turn(typed),
        load_state=lambda _: state,
        narrator=LLMNarrator(ChatClient(cfg), cfg, Recorder()),
        moderator=FlagEverything(),
    )
    assert step.outcome == REDIRECTED and step.narrator == "llm"
    sent = server.requests[before:]
    assert sent and all(FLAGGED_WORDS not in str(request["messages"]) for request in sent)
    assert REDIRECT_CUE in sent[-1]["messages"][1]["content"]


def test_the_llm_key_goes_only_to_a_moderation_endpoint_on_the_llms_host(
    server: FakeLLM,
) -> None:
    def authorization(**values: Any) -> str | None:
        moderator = moderator_for(Settings(_env_file=None, llm_api_key="sk-llm", **values))
        assert isinstance(moderator, HttpModerator)
        return moderator._client.headers.get("authorization")

    elsewhere = f"http://127.0.0.1:{server.port}/v1/moderations"
    assert authorization(moderation_url=elsewhere) is None  # the LLM is OpenAI's: not sent
    assert authorization(moderation_url=elsewhere, llm_base_url=server.base_url) == (
        "Bearer sk-llm"
    )
    assert authorization(moderation_url=elsewhere, moderation_api_key="sk-mod") == ("Bearer sk-mod")
