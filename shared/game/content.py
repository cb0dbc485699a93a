"""The adventure's fixed content: classes, races, quests and foes. Data only, no logic."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BACKGROUNDS",
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

# The interview's offered backgrounds: the choice as shown, and the backstory it gives.
BACKGROUNDS: dict[str, str] = {
    "A deserter from a cruel lord's army": (
        "You deserted a cruel lord's army and have been walking away from it ever since."
    ),
    "An apprentice who read a forbidden book": (
        "You read the one book your master forbade, and it read you back."
    ),
    "An orphan raised by smugglers": (
        "Smugglers raised you on the coast; you know every cove and owe every captain."
    ),
}

RACES: dict[str, tuple[str, ...]] = {
    "dwarf": ("dwarf", "dwarves", "dwarven", "dwarvish"),
    "elf": ("elf", "elves", "elven", "elvish"),
    "halfling": ("halfling", "halflings", "hobbit"),
    "orc": ("orc", "orcs", "orcish", "half-orc"),
    "human": ("human", "humans"),
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
    # Classes this quest plays to (its checks lean on their best abilities): the notice
    # board offers a hero at least one of these when it can.
    suits: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnemyTemplate:
    name: str
    health: int
    armor: int
    attack_bonus: int
    damage: int
    initiative: int = 0


ENEMIES: dict[str, EnemyTemplate] = {
    "bog wight": EnemyTemplate("bog wight", 14, 12, 3, 6, initiative=0),
    "ember drake whelp": EnemyTemplate("ember drake whelp", 16, 13, 4, 6, initiative=1),
    "lantern thief": EnemyTemplate("lantern thief", 12, 12, 3, 6, initiative=3),
    "ash wolf": EnemyTemplate("ash wolf", 9, 11, 2, 4, initiative=2),
    "barrow king": EnemyTemplate("barrow king", 20, 13, 4, 8, initiative=0),
    "thorn witch": EnemyTemplate("thorn witch", 15, 12, 4, 6, initiative=2),
    "clockwork sentinel": EnemyTemplate("clockwork sentinel", 18, 14, 3, 8, initiative=-1),
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
            suits=("fighter",),
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
            suits=("fighter", "rogue"),
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
            suits=("rogue",),
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
            suits=("wizard", "fighter"),
        ),
        QuestTemplate(
            "thorn-crown",
            "The Thorn Crown",
            "Brambles swallow the road to Hollowmere overnight, and children dream of a "
            "woman made of thorns.",
            "a seed that grows into any tree you name",
            (
                _O(
                    "Ask the woodcutter's daughter about her dreams",
                    _K.TALK,
                    "a woodcutter's cottage",
                    "little Wren",
                    "wisdom",
                    11,
                ),
                _O(
                    "Find the heart of the bramble maze",
                    _K.EXPLORE,
                    "the bramble maze",
                    "a clearing ringed by black roses",
                    "dexterity",
                    12,
                ),
                _O("Defeat the thorn witch", _K.FIGHT, "the heart of the maze", "thorn witch"),
            ),
            suits=("rogue", "wizard"),
        ),
        QuestTemplate(
            "silent-vault",
            "The Silent Vault",
            "The dwarf-built vault under Stonemarch has stopped answering its keepers, and its "
            "doors are grinding open by themselves.",
            "a dwarven rune that never dulls a blade",
            (
                _O(
                    "Persuade the vault-warden to let you in",
                    _K.TALK,
                    "the gate of Stonemarch",
                    "Warden Orsik",
                    "charisma",
                    12,
                ),
                _O(
                    "Decipher the runes of the inner door",
                    _K.EXPLORE,
                    "the rune hall",
                    "the key rune",
                    "intelligence",
                    13,
                ),
                _O(
                    "Defeat the clockwork sentinel",
                    _K.FIGHT,
                    "the vault's heart",
                    "clockwork sentinel",
                ),
            ),
            suits=("fighter", "wizard"),
        ),
    )
}

ROAMING_ENEMY = "ash wolf"
