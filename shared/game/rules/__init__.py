"""The game rules: pure functions from (state, action, dice) to a new state and an outcome.

No I/O here: no Redis, Celery, FastAPI or CrewAI. A turn is `begin_turn`, then the resolver
for the state's route, then `conclude_turn`; `resolve_turn` runs all three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum

from shared.game.content import FINALE
from shared.game.dice import Dice
from shared.game.rules.character import create_character
from shared.game.rules.choices import choices_for
from shared.game.rules.clarify import UNSURE_OUTCOME
from shared.game.rules.combat import combat_round
from shared.game.rules.ending import close_if_due, tell_epilogue
from shared.game.rules.exploration import converse, explore
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.pacing import adventure_phase_for, later_phase
from shared.game.rules.quests import accept_quest, fail_quest, quest_overdue
from shared.models import AdventurePhase, GamePhase, GameState, Moment

__all__ = [
    "RESOLVERS",
    "Outcome",
    "Resolution",
    "Route",
    "begin_turn",
    "choices_for",
    "conclude_turn",
    "resolve_turn",
    "route_for",
]

MAX_MOMENTS = 12


class Route(StrEnum):
    CREATE_CHARACTER = "create_character"
    CHOOSE_QUEST = "choose_quest"
    EXPLORE = "explore"
    FIGHT = "fight"
    CONVERSE = "converse"
    EPILOGUE = "epilogue"


RESOLVERS: dict[Route, Callable[[GameState, str, Dice], Resolution]] = {
    Route.CREATE_CHARACTER: create_character,
    Route.CHOOSE_QUEST: accept_quest,
    Route.EXPLORE: explore,
    Route.FIGHT: combat_round,
    Route.CONVERSE: converse,
    Route.EPILOGUE: tell_epilogue,
}

_ROUTE_BY_PHASE = {
    GamePhase.CHARACTER_CREATION: Route.CREATE_CHARACTER,
    GamePhase.QUEST_SELECTION: Route.CHOOSE_QUEST,
    GamePhase.EXPLORATION: Route.EXPLORE,
    GamePhase.COMBAT: Route.FIGHT,
    GamePhase.DIALOGUE: Route.CONVERSE,
    GamePhase.EPILOGUE: Route.EPILOGUE,
}


def route_for(state: GameState) -> Route:
    return _ROUTE_BY_PHASE[state.phase]


def begin_turn(state: GameState) -> GameState:
    """Advance the story's clock: every turn of the adventure proper counts, the interview
    before it and the epilogue after it do not."""
    if state.clarify_choices:
        state = state.model_copy(update={"clarify_choices": []})
    if state.phase in (GamePhase.CHARACTER_CREATION, GamePhase.EPILOGUE):
        return state
    turn = state.adventure_turn + 1
    phase = adventure_phase_for(turn, state.max_turns)
    if state.active_quest is not None and state.active_quest.quest_id == FINALE.quest_id:
        phase = later_phase(phase, AdventurePhase.CLIMAX)  # the climax came to the hero
    # The story can move the arc ahead of the clock (rules.pacing), never back.
    phase = later_phase(state.adventure_phase, phase)
    return state.model_copy(update={"adventure_turn": turn, "adventure_phase": phase})


def _remember(moments: list[Moment], new: Moment) -> list[Moment]:
    """`new` added; past MAX_MOMENTS, the least significant (the oldest of those) is
    forgotten, so the tale's turning points outlive its skirmishes."""
    kept = [*moments, new]
    if len(kept) > MAX_MOMENTS:
        weakest = min(range(len(kept)), key=lambda i: (kept[i].significance, i))
        del kept[weakest]
    return kept


def conclude_turn(resolution: Resolution, dice: Dice) -> Resolution:
    """Lose a quest whose time ran out, record the turn's moments, close the story when its
    turns are up, and offer the next choices. A turn that asks which of two things the player
    meant (`clarify`) does none of that but offer the two."""
    state, outcome = resolution.state, resolution.outcome
    asking = outcome.kind == UNSURE_OUTCOME
    if state.clarify_choices and not asking:
        # Offered by an asking turn only: gone once anything else happened.
        state = state.model_copy(update={"clarify_choices": []})
    new_moments = [outcome.moment] if outcome.moment else []
    if not asking and quest_overdue(state):
        assert state.active_quest is not None
        why = f"Too late: the time given for {state.active_quest.title} has run out."
        state, lost, failed = fail_quest(state, why, dice)
        outcome = replace(outcome, facts=[*outcome.facts, *lost])
        new_moments.append(failed)
    moments = state.adventure_moments
    for new in new_moments:
        moments = _remember(moments, new.model_copy(update={"turn": state.adventure_turn}))
    state = state.model_copy(update={"adventure_moments": moments})
    # A turn that asks what the player meant closes nothing: the answer comes first.
    state, closing = (state, []) if asking else close_if_due(state)
    if closing:
        outcome = replace(outcome, facts=[*outcome.facts, *closing])
    state = state.model_copy(update={"current_choices": choices_for(state)})
    return Resolution(state, outcome)


def resolve_turn(state: GameState, action: str, dice: Dice) -> Resolution:
    started = begin_turn(state)
    return conclude_turn(RESOLVERS[route_for(started)](started, action, dice), dice)
