"""Pacing: how far through its arc the adventure is.

The arc is setup, rising action, midpoint, climax and denouement, in that order, and never
goes back. The turn count moves it (every phase gets at least one turn, however short the
adventure), and so does the story: a quest finished from the midpoint on, before the climax,
raises the stakes, and the climax comes to the hero (`FINALE`, a last quest) instead of the
story closing from its midpoint. A story closes through its climax; only the hero's death
cuts it short.
"""

from __future__ import annotations

from shared.models import AdventurePhase

__all__ = [
    "ARC",
    "adventure_phase_for",
    "later_phase",
    "quest_can_end_adventure",
    "reached",
]

ARC = list(AdventurePhase)
# Where each phase after the first begins, as a share of the adventure's turns.
_STARTS: tuple[float, ...] = (0.15, 0.45, 0.60, 0.85)


def _first_turns(max_turns: int) -> list[int]:
    """The adventure turn on which each phase begins: at its share of the turns, but at
    least one turn after the phase before, and the denouement no later than the last turn."""
    firsts = [1]
    for share in _STARTS:
        firsts.append(max(firsts[-1] + 1, round(share * max_turns) + 1))
    return [min(first, max_turns) for first in firsts]


def adventure_phase_for(adventure_turn: int, max_turns: int) -> AdventurePhase:
    phase = ARC[0]
    for first, candidate in zip(_first_turns(max_turns), ARC, strict=True):
        if adventure_turn >= first:
            phase = candidate
    return phase


def later_phase(one: AdventurePhase, other: AdventurePhase) -> AdventurePhase:
    return one if ARC.index(one) >= ARC.index(other) else other


def reached(current: AdventurePhase, phase: AdventurePhase) -> bool:
    return ARC.index(current) >= ARC.index(phase)


def quest_can_end_adventure(current: AdventurePhase) -> bool:
    """A quest finished from the midpoint on brings on the story's end: the epilogue if the
    climax has come, else the climax itself."""
    return reached(current, AdventurePhase.MIDPOINT)
