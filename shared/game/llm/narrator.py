"""`LLMNarrator`: the original game's agents on an LLM, behind the `Narrator` interface.

Per turn, after the rules have decided what happened:

- the **Game Keeper** (when dice were rolled or a fight is on) states the mechanical outcome
  in a sentence;
- **The Jester** (now and then: seeded dice, and a cooldown of `JESTER_COOLDOWN` turns) adds a
  quip;
- the **Narrator** (always) tells the turn, seeing the game state, what happened, and the
  others' words, then rewords the rules' choices. Its reply is streamed to the player as it
  is generated.

The narrator's reply is structured (`narrative`, `###`, numbered choices). Choices that do not
match the rules' in number and shape are dropped for the rules' own words; an empty narrative
is replaced by the offline narrator's. When the LLM keeps failing, `LLM_FALLBACK` decides:
the offline narrator tells the turn (the result says so), or the turn fails.
"""

from __future__ import annotations

import re

from shared.errors import NarratorUnavailable
from shared.game.dice import Dice
from shared.game.llm.client import ChatClient
from shared.game.llm.streaming import NarrativeSplitter
from shared.game.narrator import Narration, NarrationStream, OfflineNarrator
from shared.game.rules import Outcome
from shared.models import GamePhase, GameState, TokenUsage
from shared.settings import Settings

__all__ = ["LLMNarrator", "parse_choices"]

_CHOICE_LINE = re.compile(r"^\s*(\d+)[.)]\s*(.+?)\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CHOICE_LENGTH = 100
# Phases whose choices the rules match word for word: an LLM may not reword them.
_LITERAL_PHASES = {GamePhase.CHARACTER_CREATION, GamePhase.QUEST_SELECTION}

NARRATOR_ROLE = (
    "You are the Narrator of Pocket Portals, a fantasy text adventure. Write in the second "
    "person, vivid but brief: 2 to 5 sentences. Never invent outcomes: tell exactly what the "
    "rules decided. After the story write a line with only ### and then the player's options, "
    "reworded to fit the story, numbered, one per line, in the same order and the same number "
    "as given."
)
KEEPER_ROLE = (
    "You are the Game Keeper. In one short sentence, state the mechanical outcome of the dice "
    "rolls below for the narrator. No story, just the facts."
)
JESTER_ROLE = (
    "You are The Jester, a cheeky voice that pokes fun at the hero. One short witty line, "
    "no more than 20 words."
)


def parse_choices(tail: str | None, expected: int) -> list[str] | None:
    """The reworded choices from the reply's tail, or None if they are not usable."""
    if tail is None or expected == 0:
        return None
    choices = []
    for line in tail.splitlines():
        match = _CHOICE_LINE.match(line)
        if match:
            choices.append(match.group(2).strip().strip('"'))
    well_formed = (
        len(choices) == expected
        and len(set(choices)) == expected
        and all(0 < len(c) <= MAX_CHOICE_LENGTH and not _CONTROL.search(c) for c in choices)
    )
    return choices if well_formed else None


def _context(state: GameState) -> str:
    sheet = state.character_sheet
    hero = f"{sheet.name}, a {sheet.race} {sheet.character_class}" if sheet else "a new adventurer"
    quest = state.active_quest.title if state.active_quest else "none yet"
    recent = " / ".join(h.narrative[:200] for h in state.conversation_history[-2:])
    return (
        f"Hero: {hero}. Health {state.health_current}/{state.health_max}. "
        f"Location: {state.location}. Quest: {quest}. Phase: {state.phase.value}, "
        f"story arc: {state.adventure_phase.value}, turn {state.adventure_turn} of "
        f"{state.max_turns}. Recently: {recent or 'the story begins'}."
    )


class _Turn:
    """One turn's conversation with the agents: its budget, usage and stream."""

    def __init__(self, client: ChatClient, stream: NarrationStream, budget: int) -> None:
        self.client = client
        self.stream = stream
        self.budget = budget
        self.usage = TokenUsage()

    def ask(self, role: str, content: str, share: float) -> str:
        tokens = max(32, int(self.budget * share))
        reply = self.client.complete(
            [{"role": "system", "content": role}, {"role": "user", "content": content}],
            max_tokens=tokens,
        )
        self.usage = self.usage + reply.usage
        self.budget -= reply.usage.completion_tokens or tokens
        return reply.text.strip()

    def tell(self, content: str) -> tuple[str, str | None]:
        splitter = NarrativeSplitter()
        streamed = False

        def on_chunk(chunk: str) -> None:
            nonlocal streamed
            piece = splitter.feed(chunk)
            if piece:
                streamed = True
                self.stream.delta(piece)

        def on_retry(attempt: int) -> None:
            nonlocal splitter, streamed
            if streamed:
                self.stream.restart("llm_retry")
            splitter, streamed = NarrativeSplitter(), False

        reply = self.client.complete(
            [{"role": "system", "content": NARRATOR_ROLE}, {"role": "user", "content": content}],
            max_tokens=max(64, self.budget),
            on_chunk=on_chunk,
            on_retry=on_retry,
        )
        self.usage = self.usage + reply.usage
        if not streamed:  # a server that ignored streaming: the whole reply at once
            on_chunk(reply.text)
        last, split = splitter.finish()
        if last:
            self.stream.delta(last)
        return split.narrative, split.tail


class LLMNarrator:
    def __init__(
        self,
        client: ChatClient,
        settings: Settings,
        stream: NarrationStream,
        fallback: OfflineNarrator | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.stream = stream
        self.fallback = fallback or OfflineNarrator()

    def _jester_due(self, state: GameState, dice: Dice) -> bool:
        cooled = state.adventure_turn - state.jester_last_turn >= self.settings.jester_cooldown
        return cooled and dice.roll(3) == 1

    def narrate(self, state: GameState, action: str, outcome: Outcome, dice: Dice) -> Narration:
        turn = _Turn(self.client, self.stream, self.settings.llm_max_tokens)
        try:
            return self._narrate(turn, state, action, outcome, dice)
        except NarratorUnavailable:
            if self.settings.llm_fallback == "fail":
                raise
            return self._fall_back(turn, state, action, outcome, dice)

    def _narrate(
        self, turn: _Turn, state: GameState, action: str, outcome: Outcome, dice: Dice
    ) -> Narration:
        happened = " ".join(outcome.facts)
        notes = []
        if outcome.checks or state.phase is GamePhase.COMBAT:
            keeper = turn.ask(
                KEEPER_ROLE, "Rolls: " + "; ".join(outcome.checks or [happened]), 0.15
            )
            notes.append(f"The Game Keeper says: {keeper}")
        jester_spoke = self._jester_due(state, dice)
        if jester_spoke:
            quip = turn.ask(
                JESTER_ROLE, f"The hero tried: {action}. What happened: {happened}", 0.1
            )
            notes.append(f"The Jester quips: {quip}")
        canonical = state.current_choices
        options = "\n".join(f"{n}. {c}" for n, c in enumerate(canonical, start=1))
        prompt = "\n".join(
            [
                _context(state),
                f"The player's action: {action}",
                f"What the rules decided: {happened}",
                *notes,
                "The story ends with this turn: write its epilogue."
                if state.adventure_completed
                else f"The player's options now:\n{options}",
            ]
        )
        narrative, tail = turn.tell(prompt)
        if not narrative:  # garbage or silence: the offline words, streamed as one piece
            narrative = self.fallback.narrate(state, action, outcome, dice).narrative
            self.stream.delta(narrative)
        reworded = None if state.phase in _LITERAL_PHASES else parse_choices(tail, len(canonical))
        return Narration(
            narrative, choices=reworded, source="llm", usage=turn.usage, jester_spoke=jester_spoke
        )

    def _fall_back(
        self, turn: _Turn, state: GameState, action: str, outcome: Outcome, dice: Dice
    ) -> Narration:
        self.stream.restart("offline_fallback")
        narration = self.fallback.narrate(state, action, outcome, dice)
        self.stream.delta(narration.narrative)
        return Narration(narration.narrative, source="offline_fallback", usage=turn.usage)
