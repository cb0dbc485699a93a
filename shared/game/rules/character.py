"""Character creation: a description (or a quick pick) becomes a `CharacterSheet`."""

from __future__ import annotations

import re

from shared.game.content import CLASSES, RACES, ClassTemplate
from shared.game.dice import Dice, modifier
from shared.game.rules.intents import matches_choice, words
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.quests import draw_quest_options
from shared.models import CharacterSheet, GamePhase, GameState

__all__ = ["QUICK_PICKS", "create_character", "creation_choices", "player_armor"]

QUICK_PICKS: dict[str, tuple[str, str, str]] = {
    "Play Brannoc, a dwarf fighter": ("Brannoc", "dwarf", "fighter"),
    "Play Elowen, an elf wizard": ("Elowen", "elf", "wizard"),
    "Play Pip, a halfling rogue": ("Pip", "halfling", "rogue"),
}
_NAMES = ["Ash", "Bryn", "Corin", "Dara", "Edric", "Fen", "Gwen", "Hale", "Isolde", "Jory"]
_NAME_PATTERN = re.compile(
    r"(?i:my name is|i am|i'm|called|named|call me)\s+([A-Z][A-Za-z'-]{1,20})"
)


def creation_choices() -> list[str]:
    return list(QUICK_PICKS)


def _class_for(text: str) -> ClassTemplate:
    return next(
        (c for c in CLASSES.values() if any(k in text for k in c.keywords)), CLASSES["fighter"]
    )


def _race_for(text: str) -> str:
    return next((race for race, keys in RACES.items() if any(k in text for k in keys)), "human")


def player_armor(sheet: CharacterSheet) -> int:
    return 10 + modifier(sheet.dexterity) + CLASSES[sheet.character_class].armor_bonus


def _roll_sheet(
    name: str, race: str, template: ClassTemplate, backstory: str, dice: Dice
) -> CharacterSheet:
    scores = sorted((dice.ability_score() for _ in range(6)), reverse=True)
    stats = dict(zip(template.priorities, scores, strict=True))
    return CharacterSheet(
        name=name,
        race=race,
        character_class=template.name,
        strength=stats["strength"],
        dexterity=stats["dexterity"],
        constitution=stats["constitution"],
        intelligence=stats["intelligence"],
        wisdom=stats["wisdom"],
        charisma=stats["charisma"],
        equipment=list(template.equipment),
        backstory=backstory,
    )


def create_character(state: GameState, action: str, dice: Dice) -> Resolution:
    pick = matches_choice(action, creation_choices())
    if pick is not None:
        name, race, class_name = QUICK_PICKS[pick]
        template = CLASSES[class_name]
        backstory = f"{name} left home with little more than a {template.weapon} and a vow."
    else:
        text = words(action)
        found = _NAME_PATTERN.search(action.strip())
        name = found.group(1) if found else dice.choice(_NAMES)
        race, template = _race_for(text), _class_for(text)
        backstory = action.strip()
    sheet = _roll_sheet(name, race, template, backstory, dice)
    health = max(6, template.base_health + modifier(sheet.constitution))
    options = draw_quest_options(state, dice)
    new_state = state.model_copy(
        update={
            "character_description": action.strip(),
            "character_sheet": sheet,
            "health_max": health,
            "health_current": health,
            "phase": GamePhase.QUEST_SELECTION,
            "quest_options": options,
        }
    )
    stats = ", ".join(
        f"{ability[:3].upper()} {getattr(sheet, ability)}"
        for ability in (
            "strength",
            "dexterity",
            "constitution",
            "intelligence",
            "wisdom",
            "charisma",
        )
    )
    facts = [
        f"You are {sheet.name}, a {sheet.race} {sheet.character_class} "
        f"carrying {', '.join(sheet.equipment)}.",
        f"Your abilities: {stats}. Health {health}.",
        "At the crossroads inn, three pleas for help are pinned to the notice board.",
    ]
    return Resolution(
        new_state, Outcome("character_created", facts, moment="set out from the crossroads inn")
    )
