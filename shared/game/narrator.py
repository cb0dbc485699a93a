"""Narrators put a turn's outcome into words. The offline one needs no network: its prose is
drawn from fixed phrases by the turn's seeded dice, so a seed and a list of actions always
give the same story."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from shared.game.dice import Dice
from shared.game.rules import Outcome
from shared.models import AdventurePhase, GameState, TokenUsage

__all__ = [
    "Narration",
    "NarrationStream",
    "Narrator",
    "NarratorFailure",
    "NullStream",
    "OfflineNarrator",
]


@dataclass(frozen=True)
class Narration:
    narrative: str
    # The rules' choices reworded, same order and count; None to show the rules' own words.
    choices: list[str] | None = None
    source: str = "offline"
    usage: TokenUsage | None = None
    jester_spoke: bool = False


class NarrationStream(Protocol):
    """Where a narrator sends its words while it produces them (the session's events)."""

    def delta(self, text: str) -> None: ...

    def restart(self, reason: str) -> None:
        """What was sent so far for this turn is void: a new attempt starts over."""


class NullStream:
    def delta(self, text: str) -> None:
        return None

    def restart(self, reason: str) -> None:
        return None


class Narrator(Protocol):
    def narrate(self, state: GameState, action: str, outcome: Outcome, dice: Dice) -> Narration:
        """Words for `outcome`, given the state after the turn and the player's action."""


_MOOD: dict[AdventurePhase, list[str]] = {
    AdventurePhase.SETUP: [
        "The morning smells of woodsmoke and possibility.",
        "A fresh wind carries the promise of the road.",
    ],
    AdventurePhase.RISING: [
        "Shadows lengthen, and the land grows stranger with every step.",
        "Somewhere far off, a crow laughs at your resolve.",
    ],
    AdventurePhase.MIDPOINT: [
        "You sense that the true shape of your task is only now revealed.",
        "The stakes have grown; there is no easy way back.",
    ],
    AdventurePhase.CLIMAX: [
        "Everything has led to this moment.",
        "Your heart pounds; the air itself seems to hold its breath.",
    ],
    AdventurePhase.DENOUEMENT: [
        "The worst is behind you, though its echoes linger.",
        "A quiet settles over the land like a blanket of snow.",
    ],
}

_REACTION: dict[str, list[str]] = {
    "combat_round": ["Steel rings against claw.", "The fight goes on, fierce and close."],
    "combat_won": ["Silence falls over the battlefield.", "You stand victorious, breathing hard."],
    "defeated": ["The world fades to grey."],
    "fled": ["You run until the sounds of pursuit fade."],
    "rested": ["For a little while, the world leaves you be."],
    "objective_done": ["Fortune favours the bold.", "One more step along the path."],
}


class NarratorFailure(RuntimeError):
    """The narrator could not tell this turn."""


class OfflineNarrator:
    """Deterministic narration. For drills, `delay` stands in for a slow LLM (tests use it to
    catch a turn in flight) and `fail_on` for a broken one."""

    def __init__(self, delay: float = 0.0, fail_on: str = "") -> None:
        self.delay = delay
        self.fail_on = fail_on

    def narrate(self, state: GameState, action: str, outcome: Outcome, dice: Dice) -> Narration:
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on and self.fail_on in action:
            raise NarratorFailure(f"drill: the narrator fails on {self.fail_on!r}")
        parts = [dice.choice(_MOOD[state.adventure_phase])]
        parts += [fact[:1].upper() + fact[1:] for fact in outcome.facts]
        reaction = _REACTION.get(outcome.kind)
        if reaction:
            parts.append(dice.choice(reaction))
        if state.adventure_completed:
            parts.append(self.epilogue(state))
        return Narration(" ".join(parts))

    @staticmethod
    def epilogue(state: GameState) -> str:
        name = state.character_sheet.name if state.character_sheet else "The wanderer"
        if state.health_current == 0:
            ending = f"Here ends the tale of {name}, who fell far from home."
        elif state.completed_quests:
            titles = ", ".join(q.title for q in state.completed_quests)
            ending = f"And so {name} returned to the crossroads inn, hero of {titles}."
        else:
            ending = f"And so {name}'s road comes to an end, the tale unfinished but not forgotten."
        recalled = "; ".join(state.adventure_moments[-5:])
        return (
            f"Epilogue: {ending} They remember how they {recalled}."
            if recalled
            else (f"Epilogue: {ending}")
        )
