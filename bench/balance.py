"""Game balance: play many offline adventures through the pure rules with a few player styles
and print how they end (survival, quests finished, turns, fights).

    python -m bench.balance                    # 400 seeds per style, MAX_TURNS 40
    python -m bench.balance --seeds 100 --max-turns 24

No services: the rules are pure functions, so this takes seconds. Use it before changing
health, damage, difficulty or pacing numbers, and compare the table before and after.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import mean

from shared.game.dice import Dice
from shared.game.rules import choices_for, resolve_turn
from shared.models import GamePhase, GameState

__all__ = ["STYLES", "Tally", "main", "play"]

Style = Callable[[GameState, random.Random], str]


def _cautious(state: GameState, rng: random.Random) -> str:
    choices = state.current_choices
    if state.phase is GamePhase.COMBAT and state.health_current * 3 < state.health_max:
        return "Flee"
    if state.health_current * 2 < state.health_max and "Rest for a moment" in choices:
        return "Rest for a moment"
    return choices[0]


def _reckless(state: GameState, rng: random.Random) -> str:
    return state.current_choices[0]


def _random(state: GameState, rng: random.Random) -> str:
    return rng.choice(state.current_choices)


STYLES: dict[str, Style] = {"cautious": _cautious, "reckless": _reckless, "random": _random}


@dataclass
class Tally:
    alive: int = 0
    dead: int = 0
    quests: int = 0
    fights: int = 0
    turns: list[int] = field(default_factory=list)


def play(seed: int, max_turns: int, style: Style) -> tuple[GameState, int, int]:
    """One adventure from a ready-made hero to its epilogue: the final state, its turns and
    the fights won."""
    rng = random.Random(seed)
    state = GameState(session_id="b" * 24, seed=seed, max_turns=max_turns)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    turns = fights = 0
    while not state.adventure_completed:
        action = rng.choice(state.current_choices[:3]) if turns == 0 else style(state, rng)
        resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
        state = resolved.state.model_copy(update={"version": state.version + 1})
        fights += resolved.outcome.kind == "combat_won"
        turns += 1
    return state, turns, fights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--max-turns", type=int, default=40)
    args = parser.parse_args(argv)
    lines = [
        f"Offline adventures, {args.seeds} seeds per style, MAX_TURNS {args.max_turns}",
        "",
        "| style | survived | died | quests per adventure | turns (mean / max) | fights won |",
        "|---|---|---|---|---|---|",
    ]
    for name, style in STYLES.items():
        tally = Tally()
        for seed in range(args.seeds):
            final, turns, fights = play(seed, args.max_turns, style)
            tally.alive += final.health_current > 0
            tally.dead += final.health_current == 0
            tally.quests += len(final.completed_quests)
            tally.fights += fights
            tally.turns.append(turns)
        lines.append(
            f"| {name} | {tally.alive / args.seeds:.0%} | {tally.dead / args.seeds:.0%} "
            f"| {tally.quests / args.seeds:.2f} | {mean(tally.turns):.1f} / {max(tally.turns)} "
            f"| {tally.fights / args.seeds:.2f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
