"""Seeded dice. Every roll of a turn comes from one `Dice` derived from the session's seed and
the state version, so replaying the same actions from the same seed rolls the same numbers,
and a turn retried after a crash rolls what its first attempt rolled."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Check", "Dice", "modifier"]


def modifier(score: int) -> int:
    return (score - 10) // 2


@dataclass(frozen=True)
class Check:
    roll: int
    bonus: int
    target: int

    @property
    def total(self) -> int:
        return self.roll + self.bonus

    @property
    def success(self) -> bool:
        return self.roll == 20 or (self.roll != 1 and self.total >= self.target)

    def describe(self, what: str) -> str:
        sign = "+" if self.bonus >= 0 else "-"
        verdict = "success" if self.success else "failure"
        return (
            f"{what}: d20 {self.roll} {sign} {abs(self.bonus)} = {self.total} "
            f"vs {self.target}, {verdict}"
        )


class Dice:
    def __init__(self, seed: int, version: int) -> None:
        self._rng = random.Random(f"pocket-portals:{seed}:{version}")

    @classmethod
    def for_turn(cls, seed: int, version: int) -> Dice:
        return cls(seed, version)

    def roll(self, sides: int, count: int = 1) -> int:
        return sum(self._rng.randint(1, sides) for _ in range(count))

    def d20(self) -> int:
        return self.roll(20)

    def check(self, bonus: int, target: int) -> Check:
        return Check(self.d20(), bonus, target)

    def ability_score(self) -> int:
        """4d6, drop the lowest: 3..18."""
        rolls = sorted(self._rng.randint(1, 6) for _ in range(4))
        return sum(rolls[1:])

    def choice(self, options: list[str]) -> str:
        return options[self._rng.randrange(len(options))]

    def sample(self, options: list[str], k: int) -> list[str]:
        return self._rng.sample(options, k)
