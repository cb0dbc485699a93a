"""The adventure's fixed content: classes, races, quests and foes. Data only, no logic."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CLASSES",
    "ENEMIES",
    "QUESTS",
    "RACES",
    "ClassTemplate",
    "EnemyTemplate",
    "ObjectiveKind",
    "ObjectiveTemplate",
    "QuestTemplate",
]


@dataclass(frozen=True)
class ClassTemplate:
    name: str
    keywords: tuple[str, ...]
    # Ability names, most important first: the best rolls go there.
    priorities: tuple[str, ...]
    base_health: int
    weapon: str
    damage_die: int
    attack_stat: str
    armor_bonus: int
    equipment: tuple[str, ...]


CLASSES: dict[str, ClassTemplate] = {
    "fighter": ClassTemplate(
        "fighter",
        ("fighter", "warrior", "knight", "soldier", "sword", "barbarian", "paladin", "guard"),
        ("strength", "constitution", "dexterity", "wisdom", "charisma", "intelligence"),
        14,
        "longsword",
        8,
        "strength",
        4,
        ("longsword", "shield", "chain shirt", "rations"),
    ),
    "wizard": ClassTemplate(
        "wizard",
        ("wizard", "mage", "magic", "spell", "sorcer", "witch", "scholar", "apprentice"),
        ("intelligence", "constitution", "dexterity", "wisdom", "charisma", "strength"),
        10,
        "firebolt",
        10,
        "intelligence",
        0,
        ("spellbook", "quarterstaff", "lantern", "ink and quill"),
    ),
    "rogue": ClassTemplate(
        "rogue",
        ("rogue", "thief", "sneak", "assassin", "scout", "burglar", "pickpocket", "dagger"),
        ("dexterity", "charisma", "constitution", "wisdom", "intelligence", "strength"),
        12,
        "twin daggers",
        6,
        "dexterity",
        2,
        ("twin daggers", "thieves' tools", "dark cloak", "grappling hook"),
    ),
}

RACES: dict[str, tuple[str, ...]] = {
    "dwarf": ("dwarf", "dwarven"),
    "elf": ("elf", "elven", "elvish"),
    "halfling": ("halfling", "hobbit"),
    "orc": ("orc", "half-orc"),
    "human": ("human",),
}


class ObjectiveKind(StrEnum):
    EXPLORE = "explore"
    TALK = "talk"
    FIGHT = "fight"


@dataclass(frozen=True)
class ObjectiveTemplate:
    text: str
    kind: ObjectiveKind
    location: str
    # Who or what the objective concerns: an NPC to talk to, a foe to fight, a place to find.
    subject: str
    ability: str = "wisdom"
    difficulty: int = 12


@dataclass(frozen=True)
class QuestTemplate:
    quest_id: str
    title: str
    description: str
    reward: str
    objectives: tuple[ObjectiveTemplate, ...]


@dataclass(frozen=True)
class EnemyTemplate:
    name: str
    health: int
    armor: int
    attack_bonus: int
    damage: int


ENEMIES: dict[str, EnemyTemplate] = {
    "bog wight": EnemyTemplate("bog wight", 14, 12, 3, 6),
    "ember drake whelp": EnemyTemplate("ember drake whelp", 16, 13, 4, 6),
    "lantern thief": EnemyTemplate("lantern thief", 12, 12, 3, 6),
    "ash wolf": EnemyTemplate("ash wolf", 9, 11, 2, 4),
    "barrow king": EnemyTemplate("barrow king", 20, 13, 4, 8),
}

_O = ObjectiveTemplate
_K = ObjectiveKind

QUESTS: dict[str, QuestTemplate] = {
    q.quest_id: q
    for q in (
        QuestTemplate(
            "drowned-bell",
            "The Drowned Bell",
            "A chapel bell tolls at midnight from beneath the marsh, and the villagers are "
            "vanishing one by one.",
            "a blessed silver charm",
            (
                _O(
                    "Find the path to the sunken chapel",
                    _K.EXPLORE,
                    "the Mirewood marsh",
                    "a causeway of black stones",
                    "wisdom",
                    12,
                ),
                _O("Defeat the bog wight", _K.FIGHT, "the sunken chapel", "bog wight"),
                _O(
                    "Ring the drowned bell to lay the dead to rest",
                    _K.EXPLORE,
                    "the bell tower",
                    "the drowned bell",
                    "strength",
                    11,
                ),
            ),
        ),
        QuestTemplate(
            "ember-thief",
            "The Ember Thief",
            "Someone stole the everburning ember from the village forge, and winter is coming.",
            "a sword quenched in the ember's fire",
            (
                _O(
                    "Question Hilda the smith",
                    _K.TALK,
                    "the cold forge",
                    "Hilda the smith",
                    "charisma",
                    11,
                ),
                _O(
                    "Track the thief into the Ashen Hills",
                    _K.EXPLORE,
                    "the Ashen Hills",
                    "scorched footprints",
                    "wisdom",
                    12,
                ),
                _O("Defeat the ember drake whelp", _K.FIGHT, "a smoking cave", "ember drake whelp"),
            ),
        ),
        QuestTemplate(
            "lost-lantern",
            "The Lost Lantern",
            "The lighthouse keeper's lantern was taken, and ships are breaking on the rocks.",
            "the keeper's gratitude and a map of hidden coves",
            (
                _O(
                    "Ask old Maren the keeper what she saw",
                    _K.TALK,
                    "the dark lighthouse",
                    "old Maren",
                    "charisma",
                    10,
                ),
                _O(
                    "Search the smugglers' caves",
                    _K.EXPLORE,
                    "the smugglers' caves",
                    "a hidden passage",
                    "intelligence",
                    12,
                ),
                _O("Defeat the lantern thief", _K.FIGHT, "the tide cavern", "lantern thief"),
            ),
        ),
        QuestTemplate(
            "barrow-king",
            "The Barrow King",
            "The old king stirs in his barrow, and his dead soldiers walk the moor.",
            "the barrow king's iron crown",
            (
                _O(
                    "Find the barrow's hidden door",
                    _K.EXPLORE,
                    "the windswept moor",
                    "a door of standing stones",
                    "intelligence",
                    13,
                ),
                _O(
                    "Learn the king's true name from the hermit",
                    _K.TALK,
                    "the hermit's hut",
                    "the hermit",
                    "charisma",
                    12,
                ),
                _O("Defeat the barrow king", _K.FIGHT, "the barrow's throne room", "barrow king"),
            ),
        ),
    )
}

ROAMING_ENEMY = "ash wolf"
