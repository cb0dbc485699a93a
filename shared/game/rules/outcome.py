"""What a rule decided this turn, before the narrator puts it into words.

The choices offered next are not part of it: they follow from the new state alone
(`shared.game.rules.choices.choices_for`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models import GameState

__all__ = ["Outcome", "Resolution"]


@dataclass(frozen=True)
class Outcome:
    kind: str
    facts: list[str]
    moment: str | None = None
    checks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resolution:
    state: GameState
    outcome: Outcome
