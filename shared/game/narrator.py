"""Narrators put a turn's outcome into words. The offline one needs no network: its agents'
words are drawn from fixed phrases by the turn's seeded dice (`voices`), so a seed and a list
of actions always give the same story."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from shared.game.dice import Dice
from shared.game.rules import Outcome
from shared.game.rules.agents import Agent, agents_for
from shared.game.voices import OFFLINE_VOICES, Scene
from shared.models import GameState, Quest, TokenUsage

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
    # The agents that spoke, in speaking order (`rules.agents.Agent` values).
    agents: tuple[str, ...] = ()
    # What had to be repaired in an LLM's reply (`llm.reply.Repair` names), for the metric.
    repairs: tuple[str, ...] = ()
    # (speaker, words) of each agent, in the narrative's order; joined by blank lines they
    # are the narrative.
    lines: tuple[tuple[str, str], ...] = ()
    # Quests the LLM's quest designer wrote for the notice board, in place of the ones the
    # rules drew (None: keep those).
    quests: tuple[Quest, ...] | None = None


class NarrationStream(Protocol):
    """Where a narrator sends its words while it produces them (the session's events)."""

    def delta(self, text: str, speaker: str = "narrator") -> None:
        """More of the turn's words, said by `speaker` (an agent). A speaker's first piece
        after another's begins with a blank line, so the pieces add up to the narrative."""

    def restart(self, reason: str) -> None:
        """What was sent so far for this turn is void: a new attempt starts over."""

    def waiting(self, reason: str, seconds: float) -> None:
        """The turn waits `seconds` for its LLM call: the fleet's provider budget
        (`budget`) or a provider's Retry-After (`cooldown`)."""


class NullStream:
    def delta(self, text: str, speaker: str = "narrator") -> None:
        return None

    def restart(self, reason: str) -> None:
        return None

    def waiting(self, reason: str, seconds: float) -> None:
        return None


class Narrator(Protocol):
    def narrate(self, state: GameState, action: str, outcome: Outcome, dice: Dice) -> Narration:
        """Words for `outcome`, given the state after the turn and the player's action."""


class NarratorFailure(RuntimeError):
    """The narrator could not tell this turn."""


class OfflineNarrator:
    """Deterministic narration: the agents `agents_for` routes to this turn speak in their
    offline voices; the told text puts the Narrator's words first and the others' after.
    For drills, `delay` stands in for a slow LLM (tests use it to catch a turn in flight)
    and `fail_on` for a broken one."""

    def __init__(self, delay: float = 0.0, fail_on: str = "", jester_cooldown: int = 3) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.jester_cooldown = jester_cooldown

    def narrate(
        self,
        state: GameState,
        action: str,
        outcome: Outcome,
        dice: Dice,
        crew: list[Agent] | None = None,
    ) -> Narration:
        """`crew`: the agents already chosen for this turn (a narrator that falls back on
        this one passes its own, so the dice are not drawn on twice)."""
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on and self.fail_on in action:
            raise NarratorFailure(f"drill: the narrator fails on {self.fail_on!r}")
        if crew is None:
            crew = agents_for(state, outcome, dice, cooldown=self.jester_cooldown)
        scene = Scene(state, action, outcome, dice)
        said = {agent: OFFLINE_VOICES[agent].speak(scene) for agent in crew}
        first = (Agent.NARRATOR.value, said.pop(Agent.NARRATOR))
        lines = (first, *((agent.value, line) for agent, line in said.items() if line))
        return Narration(
            "\n\n".join(text for _, text in lines),
            jester_spoke=Agent.JESTER in crew,
            agents=tuple(agent.value for agent in crew),
            lines=lines,
        )
