"""The adventure's fixed content: classes, races, quests and foes. Data only, no logic.

Quests are written as `Objective` models, the same validated shape an LLM quest designer must
fill, so a template quest and a designed one play by the same rules."""

from __future__ import annotations

from dataclasses import dataclass

from shared.models import Objective, ObjectiveKind

__all__ = [
    "BACKGROUNDS",
    "CLASSES",
    "ENEMIES",
    "QUESTS",
    "RACES",
    "FINALE",
    "ROAMING_ENEMY",
    "ClassTemplate",
    "EnemyTemplate",
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
    # Dice notation of the weapon's damage; the attack ability's modifier is added.
    damage: str
    attack_stat: str
    armor_bonus: int
    equipment: tuple[str, ...]
    # What the class does better than the others, in the rules' words (see rules.features).
    feature: str = ""


CLASSES: dict[str, ClassTemplate] = {
    c.name: c
    for c in (
        ClassTemplate(
            "fighter",
            (
                "fighter",
                "warrior",
                "knight",
                "soldier",
                "sword",
                "barbarian",
                "paladin",
                "guard",
                "fight",
            ),
            ("strength", "constitution", "dexterity", "wisdom", "charisma", "intelligence"),
            14,
            "longsword",
            "1d8",
            "strength",
            4,
            ("longsword", "shield", "chain shirt", "rations"),
            "second wind: a fighter's rest heals two dice",
        ),
        ClassTemplate(
            "wizard",
            ("wizard", "mage", "magic", "spell", "sorcer", "witch", "scholar", "apprentice"),
            ("intelligence", "constitution", "dexterity", "wisdom", "charisma", "strength"),
            10,
            "firebolt",
            "1d10",
            "intelligence",
            0,
            ("spellbook", "quarterstaff", "lantern", "ink and quill"),
            "arcane lore: a wizard searches with intelligence when it is their better ability",
        ),
        ClassTemplate(
            "rogue",
            (
                "rogue",
                "thief",
                "sneak",
                "assassin",
                "burglar",
                "pickpocket",
                "pick pocket",
                "dagger",
                "cutpurse",
            ),
            ("dexterity", "charisma", "constitution", "wisdom", "intelligence", "strength"),
            12,
            "twin daggers",
            "1d6",
            "dexterity",
            2,
            ("twin daggers", "thieves' tools", "dark cloak", "grappling hook"),
            "sneak attack: striking unseen, a rogue's first blow has advantage",
        ),
        ClassTemplate(
            "cleric",
            ("cleric", "priest", "heal", "monk", "templar", "acolyte", "holy", "nun", "friar"),
            ("wisdom", "constitution", "strength", "charisma", "dexterity", "intelligence"),
            12,
            "blessed mace",
            "1d6",
            "wisdom",
            3,
            ("blessed mace", "holy symbol", "scale mail", "healing herbs"),
            "healing prayer: a cleric's rest heals more, by wisdom",
        ),
        ClassTemplate(
            "ranger",
            ("ranger", "hunter", "huntress", "archer", "bow", "tracker", "woodsman", "scout"),
            ("dexterity", "wisdom", "constitution", "strength", "intelligence", "charisma"),
            13,
            "longbow",
            "1d8",
            "dexterity",
            2,
            ("longbow", "quiver of arrows", "hunting knife", "leather armour"),
            "tracker: a ranger searches the wild with advantage",
        ),
        ClassTemplate(
            "bard",
            ("bard", "minstrel", "singer", "musician", "lute", "poet", "storyteller", "skald"),
            ("charisma", "dexterity", "constitution", "wisdom", "intelligence", "strength"),
            11,
            "rapier",
            "1d6",
            "dexterity",
            1,
            ("rapier", "lute", "leather armour", "book of ballads"),
            "inspiration: a bard starts every fight with a song, and the first blow with advantage",
        ),
    )
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
    "dragonborn": ("dragonborn", "dragon-born", "draconic"),
    "tiefling": ("tiefling", "tieflings", "devil-blooded", "infernal"),
}


@dataclass(frozen=True)
class QuestTemplate:
    quest_id: str
    title: str
    description: str
    reward: str
    objectives: tuple[Objective, ...]
    # Classes this quest plays to (its checks lean on their best abilities): the notice
    # board offers a hero at least one of these when it can.
    suits: tuple[str, ...] = ()
    # Adventure turns the quest may take before it is lost (None: no limit).
    turns: int | None = None


@dataclass(frozen=True)
class EnemyTemplate:
    name: str
    health: int
    armor: int
    attack_bonus: int
    # Dice notation.
    damage: str
    initiative: int = 0
    # The name of more than one ("3 crypt ghouls").
    plural: str = ""


ENEMIES: dict[str, EnemyTemplate] = {
    e.name: e
    for e in (
        EnemyTemplate("bog wight", 14, 12, 3, "1d6", initiative=0),
        EnemyTemplate("ember drake whelp", 16, 13, 4, "1d6", initiative=1),
        EnemyTemplate("lantern thief", 12, 12, 3, "1d6", initiative=3),
        EnemyTemplate("ash wolf", 9, 11, 2, "1d4", initiative=2, plural="ash wolves"),
        EnemyTemplate("barrow king", 20, 13, 4, "1d8", initiative=0),
        EnemyTemplate("thorn witch", 15, 12, 4, "1d6", initiative=2),
        EnemyTemplate("clockwork sentinel", 18, 14, 3, "1d8", initiative=-1),
        EnemyTemplate("crypt ghoul", 8, 11, 2, "1d4+1", initiative=1, plural="crypt ghouls"),
        EnemyTemplate("poacher scout", 9, 12, 2, "1d6", initiative=2, plural="poacher scouts"),
        EnemyTemplate("poacher captain", 15, 12, 3, "1d8", initiative=1),
        EnemyTemplate("masked piper", 15, 12, 4, "1d6", initiative=3),
        EnemyTemplate("hollow knight", 16, 12, 3, "1d8", initiative=1),
    )
}

ROAMING_ENEMY = "ash wolf"

_O = Objective
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
                    text="Find the path to the sunken chapel",
                    kind=_K.EXPLORE,
                    location="the Mirewood marsh",
                    subject="a causeway of black stones",
                    ability="wisdom",
                    difficulty=12,
                ),
                _O(
                    text="Defeat the bog wight",
                    kind=_K.FIGHT,
                    location="the sunken chapel",
                    subject="bog wight",
                ),
                _O(
                    text="Ring the drowned bell to lay the dead to rest",
                    kind=_K.EXPLORE,
                    location="the bell tower",
                    subject="the drowned bell",
                    ability="strength",
                    difficulty=11,
                ),
            ),
            suits=("fighter", "cleric"),
        ),
        QuestTemplate(
            "ember-thief",
            "The Ember Thief",
            "Someone stole the everburning ember from the village forge, and winter is coming: "
            "the village cannot last a fortnight without it.",
            "a sword quenched in the ember's fire",
            (
                _O(
                    text="Question Hilda the smith",
                    kind=_K.TALK,
                    location="the cold forge",
                    subject="Hilda the smith",
                    ability="charisma",
                    difficulty=11,
                    clue="The thief left scorched footprints, too hot for any man, heading east "
                    "into the Ashen Hills.",
                ),
                _O(
                    text="Track the thief into the Ashen Hills",
                    kind=_K.EXPLORE,
                    location="the Ashen Hills",
                    subject="scorched footprints",
                    ability="wisdom",
                    difficulty=12,
                ),
                _O(
                    text="Defeat the ember drake whelp",
                    kind=_K.FIGHT,
                    location="a smoking cave",
                    subject="ember drake whelp",
                ),
            ),
            suits=("fighter", "rogue", "ranger"),
            turns=14,
        ),
        QuestTemplate(
            "lost-lantern",
            "The Lost Lantern",
            "The lighthouse keeper's lantern was taken, and ships are breaking on the rocks.",
            "the keeper's gratitude and a map of hidden coves",
            (
                _O(
                    text="Ask old Maren the keeper what she saw",
                    kind=_K.TALK,
                    location="the dark lighthouse",
                    subject="old Maren",
                    ability="charisma",
                    difficulty=10,
                    clue="The night the light went out, a boat with no lamps slipped into the "
                    "smugglers' caves below the cliff.",
                ),
                _O(
                    text="Search the smugglers' caves",
                    kind=_K.EXPLORE,
                    location="the smugglers' caves",
                    subject="a hidden passage",
                    ability="intelligence",
                    difficulty=12,
                ),
                _O(
                    text="Defeat the lantern thief",
                    kind=_K.FIGHT,
                    location="the tide cavern",
                    subject="lantern thief",
                ),
            ),
            suits=("rogue", "bard"),
        ),
        QuestTemplate(
            "barrow-king",
            "The Barrow King",
            "The old king stirs in his barrow, and his dead soldiers walk the moor.",
            "the barrow king's iron crown",
            (
                _O(
                    text="Find the barrow's hidden door",
                    kind=_K.EXPLORE,
                    location="the windswept moor",
                    subject="a door of standing stones",
                    ability="intelligence",
                    difficulty=13,
                ),
                _O(
                    text="Learn the king's true name from the hermit",
                    kind=_K.TALK,
                    location="the hermit's hut",
                    subject="the hermit",
                    ability="charisma",
                    difficulty=12,
                    clue="The king's true name is Aldric Hollowbone; spoken in his throne room, "
                    "it binds him to his grave.",
                ),
                _O(
                    text="Defeat the barrow king",
                    kind=_K.FIGHT,
                    location="the barrow's throne room",
                    subject="barrow king",
                ),
            ),
            suits=("wizard", "fighter", "cleric"),
        ),
        QuestTemplate(
            "thorn-crown",
            "The Thorn Crown",
            "Brambles swallow the road to Hollowmere overnight, and children dream of a "
            "woman made of thorns.",
            "a seed that grows into any tree you name",
            (
                _O(
                    text="Ask the woodcutter's daughter about her dreams",
                    kind=_K.TALK,
                    location="a woodcutter's cottage",
                    subject="little Wren",
                    ability="wisdom",
                    difficulty=11,
                    clue="In her dreams the thorn woman sings from a clearing ringed by black "
                    "roses, at the very heart of the bramble maze.",
                ),
                _O(
                    text="Find the heart of the bramble maze",
                    kind=_K.EXPLORE,
                    location="the bramble maze",
                    subject="a clearing ringed by black roses",
                    ability="dexterity",
                    difficulty=12,
                ),
                _O(
                    text="Defeat the thorn witch",
                    kind=_K.FIGHT,
                    location="the heart of the maze",
                    subject="thorn witch",
                ),
            ),
            suits=("rogue", "wizard", "ranger"),
        ),
        QuestTemplate(
            "silent-vault",
            "The Silent Vault",
            "The dwarf-built vault under Stonemarch has stopped answering its keepers, and its "
            "doors are grinding open by themselves.",
            "a dwarven rune that never dulls a blade",
            (
                _O(
                    text="Persuade the vault-warden to let you in",
                    kind=_K.TALK,
                    location="the gate of Stonemarch",
                    subject="Warden Orsik",
                    ability="charisma",
                    difficulty=12,
                    clue="The inner door answers only to the key rune, carved where the rune "
                    "hall's lamps never reach.",
                ),
                _O(
                    text="Decipher the runes of the inner door",
                    kind=_K.EXPLORE,
                    location="the rune hall",
                    subject="the key rune",
                    ability="intelligence",
                    difficulty=13,
                ),
                _O(
                    text="Defeat the clockwork sentinel",
                    kind=_K.FIGHT,
                    location="the vault's heart",
                    subject="clockwork sentinel",
                ),
            ),
            suits=("fighter", "wizard"),
        ),
        QuestTemplate(
            "sleeping-sickness",
            "The Sleeping Sickness",
            "In Brackenford the sick fall asleep and do not wake, and the shrine's candles "
            "have all gone out; the sleepers will not last many days.",
            "the shrine's blessing and a phial of holy water",
            (
                _O(
                    text="Ask Mother Ysolde what ails the sleepers",
                    kind=_K.TALK,
                    location="the shrine of Brackenford",
                    subject="Mother Ysolde",
                    ability="wisdom",
                    difficulty=11,
                    clue="Every sleeper drank from the old well, and pale lights have been "
                    "seen moving in the catacombs beneath it.",
                ),
                _O(
                    text="Find the way down through the old well",
                    kind=_K.EXPLORE,
                    location="the old well",
                    subject="a stair cut into the well's side",
                    ability="wisdom",
                    difficulty=12,
                ),
                _O(
                    text="Defeat 3 crypt ghouls",
                    kind=_K.FIGHT,
                    location="the catacombs",
                    subject="crypt ghoul",
                    count=3,
                ),
            ),
            suits=("cleric",),
            turns=16,
        ),
        QuestTemplate(
            "white-stag",
            "The White Stag",
            "Poachers hunt the white stag of Greywood, and since they came the forest has "
            "turned against every traveller.",
            "a cloak woven from the stag's shed winter coat",
            (
                _O(
                    text="Track the poachers through Greywood",
                    kind=_K.EXPLORE,
                    location="Greywood",
                    subject="a trail of snapped snares",
                    ability="wisdom",
                    difficulty=12,
                ),
                _O(
                    text="Defeat 2 poacher scouts",
                    kind=_K.FIGHT,
                    location="the poachers' lookout",
                    subject="poacher scout",
                    count=2,
                ),
                _O(
                    text="Defeat the poacher captain",
                    kind=_K.FIGHT,
                    location="the poachers' camp",
                    subject="poacher captain",
                ),
            ),
            suits=("ranger",),
        ),
        QuestTemplate(
            "stolen-song",
            "The Stolen Song",
            "The festival of Lindenholt cannot begin: the town's founding song has vanished "
            "from every singer's memory overnight.",
            "a silver lute string that never breaks",
            (
                _O(
                    text="Ask the old chorister what she remembers",
                    kind=_K.TALK,
                    location="the festival square",
                    subject="the old chorister",
                    ability="charisma",
                    difficulty=11,
                    clue="The song was last sung in the ruined amphitheatre, the night a masked "
                    "piper came to town and played it back note for note.",
                ),
                _O(
                    text="Find the song's last echo in the ruined amphitheatre",
                    kind=_K.EXPLORE,
                    location="the ruined amphitheatre",
                    subject="the song's last echo",
                    ability="charisma",
                    difficulty=12,
                ),
                _O(
                    text="Defeat the masked piper",
                    kind=_K.FIGHT,
                    location="the piper's hollow",
                    subject="masked piper",
                ),
            ),
            suits=("bard",),
        ),
    )
}

# The climax that comes to the hero when a quest ends the second half before the story's
# climax (rules.pacing): not on the notice board.
FINALE = QuestTemplate(
    "finale",
    "The Hollow Knight",
    "Word of your deeds has reached the one who set these troubles loose: the Hollow Knight "
    "rides for the crossroads, and the inn's folk look to you.",
    "the crossroads' lasting peace",
    (
        _O(
            text="Meet the Hollow Knight at the old bridge",
            kind=_K.EXPLORE,
            location="the road to the old bridge",
            subject="the Hollow Knight's black banner",
            ability="wisdom",
            difficulty=10,
        ),
        _O(
            text="Defeat the Hollow Knight",
            kind=_K.FIGHT,
            location="the old bridge",
            subject="hollow knight",
        ),
    ),
)
