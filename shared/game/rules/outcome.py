"""What a rule decided this turn, before the narrator puts it into words.

The choices offered next are not part of it: they follow from the new state alone
(`shared.game.rules.choices.choices_for`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models import GameState, Moment

__all__ = ["Outcome", "Resolution", "moment"]


def moment(kind: str, text: str, significance: int) -> Moment:
    """A moment of this turn (its turn number is set when the turn concludes)."""
    return Moment(kind=kind, text=text, significance=significance)


@dataclass(frozen=True)
class Outcome:
    kind: str
    facts: list[str]
    moment: Moment | None = None
    # Rolls as told ("Your longbow: d20 12 + 3 = 15 vs 13, success"; "Damage 1d8+3: 5 + 3 = 8").
    checks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resolution:
    state: GameState
    outcome: Outcome
