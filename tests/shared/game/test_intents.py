"""Free text read as the player meant it: a labelled set of what players type in each phase
(tests/shared/game/data/intents.tsv, how a person would read each line), which the intent
reader and the innkeeper's interview must read right at least 95 % of the time; when a line
could mean either of two things, the reader says it is unsure, and the turn asks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.game.dice import Dice
from shared.game.rules import choices_for, resolve_turn
from shared.game.rules.combat import start_combat
from shared.game.rules.intents import Intent, read_action
from shared.game.rules.interview import answer
from shared.models import GamePhase, GameState

CASES = Path(__file__).parent / "data" / "intents.tsv"
PHASES = {
    "exploration": GamePhase.EXPLORATION,
    "dialogue": GamePhase.DIALOGUE,
    "combat": GamePhase.COMBAT,
}


@dataclass(frozen=True)
class Case:
    phase: str
    action: str
    expected: str


def cases() -> list[Case]:
    rows = [line.split("\t") for line in CASES.read_text().splitlines() if line[:1] not in "#"]
    return [Case(*row) for row in rows if row != [""]]


def read(case: Case) -> str:
    """What the service reads in `case`, written as the set writes readings."""
    if case.phase == "creation":
        draft, _ = answer(None, case.action, Dice(1, 1), seed=1)
        return "|".join(v or "" for v in (draft.name, draft.race, draft.character_class))
    reading = read_action(case.action, PHASES[case.phase])
    if reading.intent is Intent.UNSURE:
        return "unsure:" + ",".join(sorted(i.value for i in reading.alternatives))
    return reading.intent.value


def expected(case: Case) -> str:
    if case.expected.startswith("unsure:"):
        return "unsure:" + ",".join(sorted(case.expected.removeprefix("unsure:").split(",")))
    return case.expected


def test_the_labelled_set_is_big_and_covers_every_phase() -> None:
    labelled = cases()
    assert len(labelled) >= 150
    assert {c.phase for c in labelled} == {*PHASES, "creation"}
    assert len({(c.phase, c.action) for c in labelled}) == len(labelled)


def test_at_least_95_percent_are_read_as_meant() -> None:
    labelled = cases()
    wrong = [(c.phase, c.action, expected(c), read(c)) for c in labelled if read(c) != expected(c)]
    accuracy = 1 - len(wrong) / len(labelled)
    assert accuracy >= 0.95, f"{accuracy:.1%} read right; misread: {wrong}"


@pytest.mark.parametrize("phase", list(PHASES))
def test_each_phase_is_read_well_on_its_own(phase: str) -> None:
    mine = [c for c in cases() if c.phase == phase]
    right = sum(read(c) == expected(c) for c in mine)
    assert right / len(mine) >= 0.9, phase


def fight(action: str) -> tuple[GameState, GameState, str]:
    """A fight with a barrow king begun by a fighter; `action` played in it."""
    state = GameState(session_id="i" * 24, seed=2)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    hero = resolve_turn(state, "Play Brannoc, a dwarf fighter", Dice(2, 0)).state
    fighting, _ = start_combat(
        hero, "barrow king", Dice(2, 1), lead="", objective=None, surprise=True
    )
    fighting = fighting.model_copy(update={"current_choices": choices_for(fighting), "version": 2})
    resolved = resolve_turn(fighting, action, Dice(2, 2))
    return fighting, resolved.state, resolved.outcome.kind


def test_an_unsure_reading_asks_and_nothing_else_happens() -> None:
    before, after, kind = fight("I look for a way out")
    assert kind == "unsure"
    assert after.current_choices == ["Flee", "Study the barrow king"]
    assert after.health_current == before.health_current
    assert after.combat_state == before.combat_state  # no blow, no round
    # The answer is read without doubt, and the asking is over.
    fled = resolve_turn(after, after.current_choices[0], Dice(2, 3))
    assert fled.outcome.kind in ("fled", "combat_round") and not fled.state.clarify_choices


def test_looking_around_in_a_fight_is_not_an_attack() -> None:
    _, after, kind = fight("look around")
    assert kind == "combat_round" and after.hero_edge == "studied"
    assert after.combat_state is not None
    assert after.combat_state.enemy_health == after.combat_state.enemy_health_max


def test_a_shield_bash_is_an_attack() -> None:
    _, after, _ = fight("I bash it with my shield and swing again")
    assert after.combat_state is None or after.combat_state.round == 2
    assert any(
        "Your longsword" in line for line in (after.combat_state.log if after.combat_state else [])
    )


def test_giving_up_a_quest_is_asked_then_done() -> None:
    state = GameState(session_id="g" * 24, seed=3)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    for action in ("Play Pip, a halfling rogue", "Accept: The Lost Lantern"):
        state = resolve_turn(state, action, Dice(3, state.version)).state
        state = state.model_copy(update={"version": state.version + 1})
    asked = resolve_turn(state, "I give up on this quest and go home", Dice(3, 9))
    assert asked.outcome.kind == "unsure"
    assert asked.state.current_choices == ["Give up on The Lost Lantern", "Press on carefully"]
    assert asked.state.active_quest is not None
    gone = resolve_turn(asked.state, "Give up on The Lost Lantern", Dice(3, 10))
    assert gone.outcome.kind == "quest_abandoned" and gone.state.active_quest is None
    assert gone.state.failed_quests[-1].quest_id == "lost-lantern"
