"""Properties of the rules over any seed and any actions (hypothesis): health in bounds,
fights end, pacing only moves forward, choices are 1 to 4 distinct ones, the interview is at
most five turns, and every adventure closes with one epilogue turn."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.game.dice import Dice
from shared.game.rules import choices_for, resolve_turn
from shared.game.rules.combat import MAX_ROUNDS
from shared.game.rules.interview import MAX_INTERVIEW_TURNS
from shared.models import AdventurePhase, GamePhase, GameState

PHRASES = [
    "Attack it",
    "Defend",
    "Flee!",
    "Search the ruins",
    "Talk to the stranger",
    "Sneak up on it",
    "Rest a while",
    "Press on carefully",
    "Leave",
    "I am Kara, an elf",
    "a wizard",
    "Roll the rest for me",
    "I take the quest about the lantern",
]
# A choice by its position, a known phrase, or anything at all.
actions = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.sampled_from(PHRASES),
    st.text(max_size=40),
)
ORDER = list(AdventurePhase)


def fresh(seed: int, max_turns: int) -> GameState:
    state = GameState(session_id="p" * 24, seed=seed, max_turns=max_turns)
    return state.model_copy(update={"current_choices": choices_for(state)})


def worst_case_turns(max_turns: int) -> int:
    # The interview, the adventure's own turns, a fight that outlasts them, the epilogue.
    return MAX_INTERVIEW_TURNS + max_turns + MAX_ROUNDS + 1


def step(state: GameState, action: int | str) -> GameState:
    choices = state.current_choices
    text = choices[action % len(choices)] if isinstance(action, int) else action
    resolved = resolve_turn(state, text, Dice.for_turn(state.seed, state.version))
    return resolved.state.model_copy(update={"version": state.version + 1})


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=100_000),
    max_turns=st.integers(min_value=5, max_value=40),
    script=st.lists(actions, min_size=1, max_size=120),
)
def test_any_actions_keep_the_game_in_bounds(
    seed: int, max_turns: int, script: list[int | str]
) -> None:
    state = fresh(seed, max_turns)
    creation_turns = fight_turns = 0
    for action in script:
        if state.adventure_completed:
            break
        before = state
        state = step(state, action)
        assert 0 <= state.health_current <= state.health_max
        assert state.adventure_turn >= before.adventure_turn
        assert ORDER.index(state.adventure_phase) >= ORDER.index(before.adventure_phase)
        if state.adventure_completed:
            assert state.current_choices == []
            assert before.phase is GamePhase.EPILOGUE  # the ending is a turn of its own
        else:
            choices = state.current_choices
            assert 1 <= len(choices) <= 4 and len(set(choices)) == len(choices)
        creation_turns += before.phase is GamePhase.CHARACTER_CREATION
        assert creation_turns <= MAX_INTERVIEW_TURNS
        fight_turns = fight_turns + 1 if state.combat_state is not None else 0
        assert fight_turns <= MAX_ROUNDS
        if state.health_current == 0:
            assert state.phase is GamePhase.EPILOGUE or state.adventure_completed


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=100_000),
    max_turns=st.integers(min_value=5, max_value=40),
    script=st.lists(actions, min_size=1, max_size=8),
)
def test_every_adventure_ends_with_an_epilogue(
    seed: int, max_turns: int, script: list[int | str]
) -> None:
    state, turns = fresh(seed, max_turns), 0
    arc: list[AdventurePhase] = []
    while not state.adventure_completed:
        # The script, over and over: players who never stop playing.
        state = step(state, script[turns % len(script)])
        turns += 1
        assert turns <= worst_case_turns(max_turns)
        if state.adventure_turn and (not arc or arc[-1] is not state.adventure_phase):
            arc.append(state.adventure_phase)
    assert state.phase is GamePhase.EPILOGUE and state.current_choices == []
    # Every phase of the arc, in order, unless the hero's death cut the story short.
    if state.health_current > 0:
        assert arc == ORDER
