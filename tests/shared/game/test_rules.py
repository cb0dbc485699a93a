"""The pure game rules: no I/O, deterministic under a seed."""

from __future__ import annotations

import random

import pytest

from shared.game.dice import Dice, modifier
from shared.game.rules import begin_turn, choices_for, resolve_turn
from shared.game.rules.combat import MAX_ROUNDS, combat_round, start_combat
from shared.game.rules.intents import Intent, intent_of
from shared.game.rules.pacing import adventure_phase_for
from shared.models import AdventurePhase, GamePhase, GameState


def fresh(seed: int = 1, max_turns: int = 40) -> GameState:
    state = GameState(session_id="s" * 24, seed=seed, max_turns=max_turns)
    return state.model_copy(update={"current_choices": choices_for(state)})


def play(state: GameState, action: str) -> GameState:
    resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
    return resolved.state.model_copy(update={"version": state.version + 1})


def test_dice_are_reproducible_per_seed_and_version() -> None:
    assert [Dice(7, 3).d20() for _ in range(5)] == [Dice(7, 3).d20() for _ in range(5)]
    rolls = {tuple(Dice(7, v).roll(20, 1) for _ in range(3)) for v in range(20)}
    assert len(rolls) > 1
    assert all(3 <= Dice(s, 0).ability_score() <= 18 for s in range(200))


def test_modifier_follows_the_usual_table() -> None:
    assert [modifier(s) for s in (3, 8, 10, 11, 12, 18)] == [-4, -1, 0, 0, 1, 4]


def test_quick_pick_creates_a_character_and_offers_quests() -> None:
    state = play(fresh(), "Play Elowen, an elf wizard")
    sheet = state.character_sheet
    assert sheet is not None
    assert (sheet.name, sheet.race, sheet.character_class) == ("Elowen", "elf", "wizard")
    assert state.phase is GamePhase.QUEST_SELECTION
    assert len(state.quest_options) == 3
    assert state.current_choices == [f"Accept: {q.title}" for q in state.quest_options]
    assert state.health_current == state.health_max >= 6


def test_free_text_description_is_understood() -> None:
    state = play(fresh(), "My name is Torva, a dwarven knight sworn to the mountain")
    sheet = state.character_sheet
    assert sheet is not None
    assert (sheet.name, sheet.race, sheet.character_class) == ("Torva", "dwarf", "fighter")
    assert "mountain" in sheet.backstory


def test_quest_accepted_by_words_not_only_by_choice() -> None:
    state = play(fresh(), "Play Pip, a halfling rogue")
    title = state.quest_options[1].title
    accepted = play(state, f"I will help with {title.split()[-1].lower()}")
    assert accepted.active_quest is not None and accepted.active_quest.title == title
    assert accepted.phase is GamePhase.EXPLORATION
    unclear = play(state, "hmm")
    assert unclear.active_quest is None and unclear.phase is GamePhase.QUEST_SELECTION


@pytest.mark.parametrize("seed", range(30))
def test_combat_always_ends_and_health_stays_in_bounds(seed: int) -> None:
    state = play(fresh(seed), "Play Brannoc, a dwarf fighter")
    state = start_combat(state, "barrow king", objective=None, player_first=True)
    for version in range(MAX_ROUNDS + 1):
        action = random.Random(seed * 100 + version).choice(["Attack", "Defend", "Flee"])
        state = combat_round(state, action, Dice(seed, version)).state
        assert 0 <= state.health_current <= state.health_max
        if state.combat_state is None:
            break
    assert state.combat_state is None


def test_pacing_is_monotonic_and_reaches_the_end() -> None:
    phases = [adventure_phase_for(t, 40) for t in range(41)]
    order = list(AdventurePhase)
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases)
    assert phases[0] is AdventurePhase.SETUP and phases[-1] is AdventurePhase.DENOUEMENT
    assert begin_turn(fresh()).adventure_turn == 1


def test_intents_of_common_words() -> None:
    assert intent_of("I swing my sword at it") is Intent.ATTACK
    assert intent_of("Flee!") is Intent.FLEE
    assert intent_of("Ask Hilda the smith for help") is Intent.TALK
    assert intent_of("Search for a hidden passage") is Intent.SEARCH
    assert intent_of("Sneak up on the bog wight") is Intent.SNEAK
    assert intent_of("dance a little jig") is Intent.OTHER


def playthrough(seed: int, max_turns: int = 40) -> list[tuple[str, str]]:
    state, chooser, log = fresh(seed, max_turns), random.Random(seed), []
    while not state.adventure_completed:
        choices = state.current_choices
        assert 1 <= len(choices) <= 4 and len(set(choices)) == len(choices)
        action = chooser.choice(choices)
        resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
        log.append((action, resolved.outcome.kind))
        state = resolved.state.model_copy(update={"version": state.version + 1})
        assert 0 <= state.health_current <= state.health_max
        assert len(log) <= max_turns
    assert state.current_choices == []
    return log


@pytest.mark.parametrize("seed", range(20))
def test_every_adventure_ends_within_max_turns(seed: int) -> None:
    assert playthrough(seed, max_turns=30)


def test_same_seed_and_actions_give_the_same_story() -> None:
    assert playthrough(11) == playthrough(11)
    assert playthrough(11) != playthrough(12)


def test_a_quest_can_be_finished() -> None:
    finished = 0
    for seed in range(20):
        state, chooser = fresh(seed), random.Random(seed)
        while not state.adventure_completed:
            state = play(state, chooser.choice(state.current_choices))
        finished += bool(state.completed_quests)
    assert finished > 0
