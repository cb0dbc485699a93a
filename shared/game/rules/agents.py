"""Who speaks in a turn, as the original game routed its agents. Pure: a function of the
state after the turn, what happened, and the turn's dice.

- the **Narrator** always tells the turn. It speaks last, so an LLM narrator hears what the
  others said; in the told text its paragraph comes first, theirs after it;
- the **Game Keeper** states the mechanics when dice were rolled or a fight is on;
- the **Innkeeper** speaks when quests are on offer or the hero is still being made (the
  interview, quest hooks);
- **The Jester** quips now and then: at most once in `cooldown` turns, when the dice allow,
  and never over a death or the epilogue;
- the **Chronicler** writes the epilogue from the adventure's moments.
"""

from __future__ import annotations

from enum import StrEnum

from shared.game.dice import Dice
from shared.game.rules.outcome import Outcome
from shared.game.rules.safety import REDIRECTED
from shared.models import GamePhase, GameState

__all__ = ["Agent", "EPILOGUE_OUTCOME", "agents_for"]

EPILOGUE_OUTCOME = "epilogue"
_INNKEEPER_OUTCOMES = {"character_created", "quest_unclear", "interview"}
# No quip over a death, the epilogue, or a redirect (the quip would echo what was typed).
_SOLEMN_OUTCOMES = {"defeated", EPILOGUE_OUTCOME, REDIRECTED}


class Agent(StrEnum):
    NARRATOR = "narrator"
    KEEPER = "keeper"
    INNKEEPER = "innkeeper"
    JESTER = "jester"
    CHRONICLER = "chronicler"
    # Backstage, LLM narrator only: writes the notice board's quests; never speaks in a turn.
    QUEST_DESIGNER = "quest_designer"


def jester_due(state: GameState, outcome: Outcome, dice: Dice, cooldown: int) -> bool:
    if outcome.kind in _SOLEMN_OUTCOMES or state.phase is GamePhase.CHARACTER_CREATION:
        return False
    cooled = state.adventure_turn - state.jester_last_turn >= cooldown
    # The die is rolled only once the cooldown allows, so the cooldown alone decides
    # whether this turn's dice are drawn on.
    return cooled and dice.roll(3) == 1


def agents_for(state: GameState, outcome: Outcome, dice: Dice, *, cooldown: int) -> list[Agent]:
    """The agents of this turn, in speaking order: the Narrator last."""
    if outcome.kind == EPILOGUE_OUTCOME:
        return [Agent.CHRONICLER, Agent.NARRATOR]
    crew: list[Agent] = []
    if outcome.checks or state.phase is GamePhase.COMBAT or outcome.kind.startswith("combat"):
        crew.append(Agent.KEEPER)
    if outcome.kind in _INNKEEPER_OUTCOMES or state.phase is GamePhase.QUEST_SELECTION:
        crew.append(Agent.INNKEEPER)
    if jester_due(state, outcome, dice, cooldown):
        crew.append(Agent.JESTER)
    crew.append(Agent.NARRATOR)
    return crew
