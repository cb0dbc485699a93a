"""How varied the offline narrator's story is: seeded playthroughs by scripted players (who pick
choices and type free actions), through the real CrewAI flow, measured sentence by sentence.

    python -m bench.variety                  # 20 games of 30 turns
    python -m bench.variety --games 50 --turns 40

Per game: the share of sentences already told earlier in the same game, the most sentences
repeated within any 10 consecutive turns, the longest run of turns opening with a sentence
already used as an opening, and the distinct sentences told. The test suite holds the
offline narrator to thresholds on these (tests/shared/game/test_variety.py).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import mean

from shared.game.flow import run_turn_step
from shared.game.narrator import OfflineNarrator
from shared.game.rules import choices_for
from shared.models import GamePhase, GameState, TurnRecord

__all__ = ["GameVariety", "measure", "play_game", "sentences"]

# What a scripted player types instead of picking a choice, by phase.
FREE_ACTIONS: dict[GamePhase, list[str]] = {
    GamePhase.CHARACTER_CREATION: ["I'm Rook, a human ranger", "Roll the rest for me"],
    GamePhase.QUEST_SELECTION: ["I'll take the first one", "What is on the board?"],
    GamePhase.EXPLORATION: [
        "I look around",
        "I search the area carefully",
        "I rest by the road",
        "I press on",
        "I listen for danger",
    ],
    GamePhase.DIALOGUE: ["Tell me what you know", "I ask about the trouble", "Goodbye"],
    GamePhase.COMBAT: ["I swing at it", "I raise my guard", "I strike again"],
    GamePhase.EPILOGUE: ["And then?"],
}
_SENTENCE = re.compile(r"(?<=[.!?'])\s+(?=[A-Z'\"])")


def sentences(narrative: str) -> list[str]:
    """The narrative's sentences, each agent's paragraph split at sentence ends."""
    return [s.strip() for p in narrative.split("\n\n") for s in _SENTENCE.split(p) if s.strip()]


def _action(state: GameState, rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(FREE_ACTIONS[state.phase])
    return rng.choice(state.current_choices)


def _loader(state: GameState) -> Callable[[str], GameState]:
    return lambda _session_id: state


def play_game(seed: int, turns: int, max_turns: int = 40) -> list[str]:
    """The narratives of up to `turns` turns of one seeded game."""
    state = GameState(session_id=f"{seed:024d}", seed=seed, max_turns=max_turns)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    narrator, rng, told = OfflineNarrator(), random.Random(seed), []
    for number in range(turns):
        if state.adventure_completed:
            break
        record = TurnRecord(
            turn_id=f"{number:016d}",
            session_id=state.session_id,
            action=_action(state, rng),
            accepted_at=time.time(),
        )
        step = run_turn_step(state.session_id, record, load_state=_loader(state), narrator=narrator)
        state = step.state.model_copy(update={"version": state.version + 1})
        told.append(step.narrative)
    return told


@dataclass(frozen=True)
class GameVariety:
    turns: int
    sentences: int
    distinct: int
    # Sentences told again in the same game, over all told.
    repeated_share: float
    # The most repeats within any 10 consecutive turns.
    repeats_in_ten: int
    # The longest run of consecutive turns opening with an opening already used.
    opening_run: int


def measure(narratives: list[str]) -> GameVariety:
    told = [sentences(n) for n in narratives]
    flat = [s for turn in told for s in turn]
    seen: set[str] = set()
    repeated = 0
    for sentence in flat:
        repeated += sentence in seen
        seen.add(sentence)
    in_ten = 0
    for start in range(max(1, len(told) - 9)):
        window = [s for turn in told[start : start + 10] for s in turn]
        in_ten = max(in_ten, len(window) - len(set(window)))
    openings: set[str] = set()
    run = longest = 0
    for turn in told:
        opening = turn[0] if turn else ""
        run = run + 1 if opening in openings else 0
        longest = max(longest, run)
        openings.add(opening)
    return GameVariety(
        turns=len(narratives),
        sentences=len(flat),
        distinct=len(seen),
        repeated_share=repeated / len(flat) if flat else 0.0,
        repeats_in_ten=in_ten,
        opening_run=longest,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args(argv)
    games = [measure(play_game(seed, args.turns)) for seed in range(args.games)]
    rows: list[tuple[str, Callable[[GameVariety], float], str]] = [
        ("repeated sentences, share", lambda g: g.repeated_share, "{:.1%}"),
        ("repeats within 10 turns", lambda g: g.repeats_in_ten, "{:.0f}"),
        ("longest run of repeated openings", lambda g: g.opening_run, "{:.0f}"),
        ("distinct sentences per game", lambda g: g.distinct, "{:.0f}"),
    ]
    out = [
        f"{args.games} games of up to {args.turns} turns, offline narrator\n",
        "| measure | mean | worst |",
        "|---|---:|---:|",
    ]
    for name, value, shown in rows:
        values = [float(value(g)) for g in games]
        worst = min(values) if name.startswith("distinct") else max(values)
        out.append(f"| {name} | {shown.format(mean(values))} | {shown.format(worst)} |")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
