"""How the story closes: at the end of its turns, on a quest finished late enough, or on the
hero's death the phase becomes `EPILOGUE`; the next turn, whatever the player says, is the
epilogue (the Chronicler tells it from the adventure's moments) and ends the adventure."""

from __future__ import annotations

from shared.game.dice import Dice
from shared.game.rules.agents import EPILOGUE_OUTCOME
from shared.game.rules.outcome import Outcome, Resolution
from shared.models import AdventurePhase, GamePhase, GameState, Moment

__all__ = ["CHRONICLE_LENGTH", "EPILOGUE_CHOICE", "chronicle", "close_if_due", "tell_epilogue"]

EPILOGUE_CHOICE = "Hear how the tale ends"
CHRONICLE_LENGTH = 5


def chronicle(state: GameState, length: int = CHRONICLE_LENGTH) -> list[Moment]:
    """The moments the Chronicler tells, in the order they happened: how it began, then the
    most significant of the rest (the later of equals)."""
    moments = state.adventure_moments
    if not moments:
        return []
    ranked = sorted(
        range(1, len(moments)), key=lambda i: (moments[i].significance, i), reverse=True
    )
    return [moments[0], *(moments[i] for i in sorted(ranked[: length - 1]))]


def close_if_due(state: GameState) -> tuple[GameState, list[str]]:
    """At `max_turns` the story closes, but not in the middle of a fight (fights end within
    MAX_ROUNDS) nor during the interview (no story has begun)."""
    due = (
        state.adventure_turn >= state.max_turns
        and state.phase not in (GamePhase.EPILOGUE, GamePhase.CHARACTER_CREATION)
        and state.combat_state is None
        and not state.adventure_completed
    )
    if not due:
        return state, []
    closed = state.model_copy(update={"phase": GamePhase.EPILOGUE, "npc_name": None})
    return closed, ["The road has run its course; the tale is ready to be told."]


def tell_epilogue(state: GameState, action: str, dice: Dice) -> Resolution:
    del action, dice  # the ending is the adventure's, whatever the player says now
    ended = state.model_copy(
        update={"adventure_completed": True, "adventure_phase": AdventurePhase.DENOUEMENT}
    )
    name = state.character_sheet.name if state.character_sheet else "the wanderer"
    facts = [f"By the fire at the crossroads inn, the tale of {name} is told."]
    return Resolution(ended, Outcome(EPILOGUE_OUTCOME, facts))
