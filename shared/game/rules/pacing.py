"""Pacing: how far through its arc the adventure is. Monotonic in `adventure_turn`."""

from __future__ import annotations

from shared.models import AdventurePhase

__all__ = ["adventure_phase_for", "quest_can_end_adventure"]

_THRESHOLDS: tuple[tuple[float, AdventurePhase], ...] = (
    (0.15, AdventurePhase.SETUP),
    (0.45, AdventurePhase.RISING),
    (0.60, AdventurePhase.MIDPOINT),
    (0.85, AdventurePhase.CLIMAX),
)


def adventure_phase_for(adventure_turn: int, max_turns: int) -> AdventurePhase:
    progress = adventure_turn / max_turns
    for limit, phase in _THRESHOLDS:
        if progress < limit:
            return phase
    return AdventurePhase.DENOUEMENT


def quest_can_end_adventure(adventure_turn: int, max_turns: int) -> bool:
    """A quest finished in the second half of the adventure closes the story."""
    return adventure_turn * 2 >= max_turns
