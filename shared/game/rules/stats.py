"""A hero's derived numbers: armour and maximum health."""

from __future__ import annotations

from shared.game.content import CLASSES
from shared.game.dice import modifier
from shared.models import CharacterSheet

__all__ = ["MAX_LEVEL", "hit_points", "player_armor"]

MAX_LEVEL = 20


def player_armor(sheet: CharacterSheet) -> int:
    return 10 + modifier(sheet.dexterity) + CLASSES[sheet.character_class].armor_bonus


def hit_points(sheet: CharacterSheet) -> int:
    """Maximum health: the class's base, the constitution modifier, and a third of the base
    again for every level above the first."""
    base = CLASSES[sheet.character_class].base_health
    return max(6, base + 6 + modifier(sheet.constitution) + (sheet.level - 1) * max(1, base // 3))
