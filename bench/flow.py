"""`python -m bench.flow`: what CrewAI's flow engine costs a turn, in-process, against the
game alone.

    python -m bench.flow                  # 300 steps a round, best of 7 rounds
    python -m bench.flow --quick          # tiny counts (the test suite's smoke run)

No Redis, no Celery: one thread plays an offline adventure some turns in, then measures the
thread CPU of (a) the game alone for a turn (the rules and the offline narrator, the calls a
flow step makes, in the same order), (b) building a `GameSessionFlow` and (c) a whole step
(`run_turn_step`), each the best of its rounds. (c) − (a) is the engine's cost per turn.
The machine's load moves these figures by 10–40 %: compare within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.measure import write_result
from shared.game.dice import Dice
from shared.game.flow import GameSessionFlow, run_turn_step
from shared.game.narrator import OfflineNarrator
from shared.game.persistence import SessionFlowPersistence, StateLoader
from shared.game.rules import RESOLVERS, begin_turn, choices_for, conclude_turn, route_for
from shared.game.rules.safety import REDIRECTED
from shared.ids import new_session_id, new_turn_id
from shared.models import GameState, TurnRecord

__all__ = ["main"]


def _turn(state: GameState) -> TurnRecord:
    return TurnRecord(
        turn_id=new_turn_id(), session_id=state.session_id, choice_index=1, action="", accepted_at=0
    )


def _loader(state: GameState) -> StateLoader:
    return lambda _session_id: state


def _played(turns: int) -> GameState:
    """A state `turns` turns into an adventure, played through the flow as a worker would."""
    state = GameState(session_id=new_session_id(), seed=11)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    narrator = OfflineNarrator()
    for _ in range(turns):
        if state.adventure_completed:
            break
        turn = _turn(state).model_copy(update={"action": state.current_choices[0]})
        result = run_turn_step(state.session_id, turn, load_state=_loader(state), narrator=narrator)
        state = result.state.model_copy(update={"version": state.version + 1})
    return state


def _game_alone(state: GameState, action: str, narrator: OfflineNarrator) -> str:
    dice = Dice.for_turn(state.seed, state.version)
    begun = begin_turn(state)
    resolution = RESOLVERS[route_for(begun)](begun, action, dice)
    concluded = conclude_turn(resolution, dice)
    spoken = "" if concluded.outcome.kind == REDIRECTED else action
    return narrator.narrate(concluded.state, spoken, concluded.outcome, dice).narrative


def _best(run: Callable[[], object], count: int, rounds: int) -> float:
    """Thread CPU of one call, in µs: the best round's mean."""
    for _ in range(min(count, 20)):
        run()
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(count):
            run()
        best = min(best, (time.thread_time() - started) / count)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--turns-in", type=int, default=20, help="how far the adventure is")
    parser.add_argument("--quick", action="store_true", help="tiny counts, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.turns_in = 5, 1, 3
    state = _played(args.turns_in)
    action = state.current_choices[0]
    turn = _turn(state).model_copy(update={"action": action})
    narrator = OfflineNarrator()
    game = _best(lambda: _game_alone(state, action, narrator), args.steps, args.rounds)
    built = _best(
        lambda: GameSessionFlow(
            initial_state=GameState(session_id=state.session_id),
            persistence=SessionFlowPersistence(_loader(state)),
            suppress_flow_events=True,
        ),
        args.steps,
        args.rounds,
    )
    step = _best(
        lambda: run_turn_step(state.session_id, turn, load_state=_loader(state), narrator=narrator),
        args.steps,
        args.rounds,
    )
    table = "\n".join(
        [
            f"# A flow step's CPU in-process {datetime.now(UTC).isoformat(timespec='seconds')}",
            "",
            f"An offline adventure {state.adventure_turn} turns in (state version "
            f"{state.version}); thread CPU per call, best of {args.rounds} rounds of "
            f"{args.steps}.",
            "",
            "| what | µs per turn |",
            "|---|---:|",
            f"| the game alone (rules and offline narrator) | {game:.0f} |",
            f"| building a GameSessionFlow | {built:.0f} |",
            f"| a whole flow step (`run_turn_step`) | {step:.0f} |",
            f"| **the engine's cost** (step − game) | **{step - game:.0f}** |",
            "",
        ]
    )
    sys.stdout.write(table)
    if not args.no_write:
        write_result("flow", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
