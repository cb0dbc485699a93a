"""Seeded dice. Every roll of a turn comes from one `Dice` derived from the session's seed and
the state version, so replaying the same actions from the same seed rolls the same numbers,
and a turn retried after a crash rolls what its first attempt rolled.

Rolls are written in the usual notation (`2d6+3`: two six-sided dice plus three) and told as
the player sees them: each die, then the modifier, then the total ("4 + 2 + 3 = 9"). A d20
check may be rolled with advantage (two d20, the higher kept) or disadvantage (the lower).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Check", "Dice", "DiceRoll", "Edge", "Notation", "modifier", "parse_notation"]

MAX_DICE = 100
MAX_SIDES = 1000
_NOTATION = re.compile(r"^\s*(\d*)\s*[dD]\s*(\d+)\s*(?:([+-])\s*(\d+))?\s*$")


def modifier(score: int) -> int:
    return (score - 10) // 2


def _signed(value: int) -> str:
    return f"+ {value}" if value >= 0 else f"- {-value}"


@dataclass(frozen=True)
class Notation:
    """`count` dice of `sides` sides, plus `bonus` (which may be negative)."""

    count: int
    sides: int
    bonus: int = 0

    def __str__(self) -> str:
        if not self.bonus:
            return f"{self.count}d{self.sides}"
        return f"{self.count}d{self.sides}{'+' if self.bonus > 0 else '-'}{abs(self.bonus)}"

    def plus(self, bonus: int) -> Notation:
        return Notation(self.count, self.sides, self.bonus + bonus)

    def times(self, factor: int) -> Notation:
        """More dice of the same kind (a critical hit doubles the dice, not the bonus)."""
        return Notation(self.count * factor, self.sides, self.bonus)


def parse_notation(text: str) -> Notation:
    """`XdY±Z` (X defaults to 1: `d20`). Raises ValueError on anything else, or on more
    than MAX_DICE dice or MAX_SIDES sides."""
    found = _NOTATION.match(text)
    if found is None:
        raise ValueError(f"not dice notation: {text!r}")
    count = int(found.group(1) or 1)
    sides = int(found.group(2))
    if not 1 <= count <= MAX_DICE or not 2 <= sides <= MAX_SIDES:
        raise ValueError(f"dice out of range: {text!r}")
    bonus = int(found.group(4) or 0) * (-1 if found.group(3) == "-" else 1)
    return Notation(count, sides, bonus)


@dataclass(frozen=True)
class DiceRoll:
    """A rolled notation: each die as it fell, and the total."""

    notation: Notation
    dice: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.dice) + self.notation.bonus

    def describe(self) -> str:
        """`2d6+3: 4 + 2 + 3 = 9`; a lone die without bonus is just its number."""
        terms = " + ".join(str(d) for d in self.dice)
        if self.notation.bonus:
            terms = f"{terms} {_signed(self.notation.bonus)}"
        if len(self.dice) == 1 and not self.notation.bonus:
            return f"{self.notation}: {self.total}"
        return f"{self.notation}: {terms} = {self.total}"


class Edge(StrEnum):
    NONE = "none"
    ADVANTAGE = "advantage"
    DISADVANTAGE = "disadvantage"


@dataclass(frozen=True)
class Check:
    """A d20 check: `rolls` are the d20s thrown (two with an edge), `roll` the one kept."""

    roll: int
    bonus: int
    target: int
    rolls: tuple[int, ...] = ()
    edge: Edge = Edge.NONE

    @property
    def total(self) -> int:
        return self.roll + self.bonus

    @property
    def success(self) -> bool:
        return self.roll == 20 or (self.roll != 1 and self.total >= self.target)

    def describe(self, what: str) -> str:
        verdict = "success" if self.success else "failure"
        thrown = f"d20 {self.roll}"
        if self.edge is not Edge.NONE and len(self.rolls) == 2:
            thrown = f"d20 with {self.edge.value} ({self.rolls[0]}, {self.rolls[1]}: {self.roll})"
        return f"{what}: {thrown} {_signed(self.bonus)} = {self.total} vs {self.target}, {verdict}"


class Dice:
    def __init__(self, seed: int, version: int) -> None:
        self._rng = random.Random(f"pocket-portals:{seed}:{version}")

    @classmethod
    def for_turn(cls, seed: int, version: int) -> Dice:
        return cls(seed, version)

    def roll(self, sides: int, count: int = 1) -> int:
        return sum(self._rng.randint(1, sides) for _ in range(count))

    def throw(self, notation: Notation | str) -> DiceRoll:
        """Roll `notation` (`Notation` or text such as "2d6+3"), keeping each die."""
        if isinstance(notation, str):
            notation = parse_notation(notation)
        dice = tuple(self.roll(notation.sides) for _ in range(notation.count))
        return DiceRoll(notation, dice)

    def d20(self) -> int:
        return self.roll(20)

    def check(self, bonus: int, target: int, edge: Edge = Edge.NONE) -> Check:
        if edge is Edge.NONE:
            return Check(self.d20(), bonus, target)
        rolls = (self.d20(), self.d20())
        kept = max(rolls) if edge is Edge.ADVANTAGE else min(rolls)
        return Check(kept, bonus, target, rolls=rolls, edge=edge)

    def ability_score(self) -> int:
        """4d6, drop the lowest: 3..18."""
        rolls = sorted(self._rng.randint(1, 6) for _ in range(4))
        return sum(rolls[1:])

    def choice(self, options: list[str]) -> str:
        return options[self._rng.randrange(len(options))]

    def sample(self, options: list[str], k: int) -> list[str]:
        return self._rng.sample(options, k)
