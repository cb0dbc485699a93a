"""`GameState`: everything the game remembers about one player's adventure."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "AdventurePhase",
    "CharacterDraft",
    "CharacterSheet",
    "CombatState",
    "GamePhase",
    "GameState",
    "HistoryEntry",
    "Moment",
    "Objective",
    "ObjectiveKind",
    "Quest",
]

# 2: the creation interview (`character_draft`) and the epilogue phase. Version-1 states
# read as they are; the number rises so that code that knows only version 1 refuses states
# it would misread (see migrations).
# 3: quests carry their objectives whole (kind, place, count: a quest need not come from the
# templates), quests can fail, moments have a kind and a significance, damage is dice
# notation, and the hero can hold an edge (advantage) for the next attack.
SCHEMA_VERSION = 3


class GamePhase(StrEnum):
    CHARACTER_CREATION = "character_creation"
    QUEST_SELECTION = "quest_selection"
    EXPLORATION = "exploration"
    COMBAT = "combat"
    DIALOGUE = "dialogue"
    # The story has closed (the end of its turns, a quest finished late, or the hero's
    # death); the next turn is the epilogue, after which the session takes no more turns.
    EPILOGUE = "epilogue"


class AdventurePhase(StrEnum):
    SETUP = "setup"
    RISING = "rising"
    MIDPOINT = "midpoint"
    CLIMAX = "climax"
    DENOUEMENT = "denouement"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HistoryEntry(_Model):
    turn_id: str
    action: str
    narrative: str


class CharacterDraft(_Model):
    """The innkeeper's interview so far: the answers given (None: still to ask)."""

    turns: int = Field(default=0, ge=0, le=5)
    description: str = ""
    name: str | None = None
    race: str | None = None
    character_class: str | None = None
    backstory: str | None = None


class CharacterSheet(_Model):
    name: str
    race: str
    character_class: str
    level: int = Field(default=1, ge=1, le=20)
    strength: int = Field(ge=3, le=18)
    dexterity: int = Field(ge=3, le=18)
    constitution: int = Field(ge=3, le=18)
    intelligence: int = Field(ge=3, le=18)
    wisdom: int = Field(ge=3, le=18)
    charisma: int = Field(ge=3, le=18)
    equipment: list[str] = Field(default_factory=list)
    backstory: str = ""


class ObjectiveKind(StrEnum):
    EXPLORE = "explore"
    TALK = "talk"
    FIGHT = "fight"


_ABILITY = Literal["strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma"]


class Objective(_Model):
    """One step of a quest. `text` names it within its quest (unique there)."""

    text: str = Field(min_length=3, max_length=120)
    kind: ObjectiveKind
    location: str = Field(min_length=2, max_length=80)
    # Who or what it concerns: an NPC to talk to, a foe to fight, a thing or place to find.
    subject: str = Field(min_length=2, max_length=60)
    ability: _ABILITY = "wisdom"
    difficulty: int = Field(default=12, ge=5, le=20)
    # How many times it must be done ("defeat 3 ash wolves"): fights of `subject` won.
    count: int = Field(default=1, ge=1, le=5)
    # What the one spoken to tells when a talk objective succeeds: the clue, rumour or way
    # that the next step needs.
    clue: str = Field(default="", max_length=300)


class Quest(_Model):
    quest_id: str
    title: str
    description: str
    objectives: list[Objective] = Field(min_length=1, max_length=6)
    completed_objectives: list[str] = Field(default_factory=list)
    # Times the current objective has been done so far (of its `count`).
    progress: int = Field(default=0, ge=0)
    reward: str = ""
    # Adventure turns it may take once accepted (None: no limit), and the last of them, set
    # when it is accepted: unfinished at the end of that turn, it is lost.
    time_limit: int | None = Field(default=None, ge=3, le=60)
    deadline: int | None = None
    # Why it was lost, once it has been.
    failed: str | None = None

    @model_validator(mode="after")
    def _distinct_objectives(self) -> Self:
        texts = [o.text for o in self.objectives]
        if len(set(texts)) != len(texts):
            raise ValueError("a quest's objectives must have distinct texts")
        return self

    @property
    def is_complete(self) -> bool:
        return all(o.text in self.completed_objectives for o in self.objectives)

    @property
    def current(self) -> Objective | None:
        return next((o for o in self.objectives if o.text not in self.completed_objectives), None)

    @property
    def next_objective(self) -> str | None:
        current = self.current
        return current.text if current else None


class Moment(_Model):
    """Something the chronicle may remember: what kind of thing it was, and how much it
    mattered (1, a passing scene, to 5, the tale's turning point)."""

    kind: str
    text: str
    significance: int = Field(default=2, ge=1, le=5)
    turn: int = Field(default=0, ge=0)


class CombatState(_Model):
    enemy_name: str
    enemy_health: int = Field(ge=0)
    enemy_health_max: int = Field(gt=0)
    enemy_armor: int = Field(ge=0)
    enemy_attack_bonus: int
    # Dice notation ("1d6+1").
    enemy_damage: str = Field(min_length=3, max_length=12)
    round: int = Field(default=1, ge=1)
    player_first: bool = True
    # The foe's next attack is rolled with advantage (the hero's flight failed).
    foe_advantage: bool = False
    objective: str | None = None
    log: list[str] = Field(default_factory=list)


class GameState(_Model):
    """One session's game. Shared by the backends, the flow step and the gateway's view.

    `version` is the fencing token of the compare-and-set commit: it starts at 0 and grows by
    exactly one per applied turn. `id` mirrors `session_id` because CrewAI's Flow keys its
    persistence by a state field named `id`.
    """

    schema_version: int = SCHEMA_VERSION
    id: str = ""
    session_id: str
    version: int = Field(default=0, ge=0)
    seed: int = 0

    conversation_history: list[HistoryEntry] = Field(default_factory=list)
    current_choices: list[str] = Field(default_factory=list)
    character_description: str = ""
    character_sheet: CharacterSheet | None = None
    character_draft: CharacterDraft | None = None
    health_current: int = Field(default=20, ge=0)
    health_max: int = Field(default=20, gt=0)
    phase: GamePhase = GamePhase.CHARACTER_CREATION
    combat_state: CombatState | None = None
    active_quest: Quest | None = None
    quest_options: list[Quest] = Field(default_factory=list)
    completed_quests: list[Quest] = Field(default_factory=list)
    failed_quests: list[Quest] = Field(default_factory=list)
    adventure_turn: int = Field(default=0, ge=0)
    adventure_phase: AdventurePhase = AdventurePhase.SETUP
    max_turns: int = Field(default=40, ge=5)
    adventure_completed: bool = False
    adventure_moments: list[Moment] = Field(default_factory=list)
    # Why the hero's next attack has advantage ("rested", "inspired"), until it is rolled.
    hero_edge: str | None = None
    # When the rules could not tell which of two things the player meant: the two, offered
    # as the next choices (cleared by the next turn).
    clarify_choices: list[str] = Field(default_factory=list, max_length=4)
    location: str = "the crossroads inn"
    npc_name: str | None = None
    # When an LLM rewords the choices, what each one means to the rules, in the same order
    # (empty when current_choices are the rules' own words). Not shown to the player.
    choice_actions: list[str] = Field(default_factory=list)
    jester_last_turn: int = -1000

    @property
    def choice_meanings(self) -> list[str]:
        """What choosing each of `current_choices` (1, 2, ...) asks the rules to do: the
        choice as the player sees it, or its meaning when an LLM reworded it."""
        return (self.choice_actions or self.current_choices)[: len(self.current_choices)]

    @model_validator(mode="before")
    @classmethod
    def _mirror_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("session_id") and not data.get("id"):
            data = {**data, "id": data["session_id"]}
        return data

    @model_validator(mode="after")
    def _check_health(self) -> Self:
        if self.health_current > self.health_max:
            raise ValueError("health_current cannot exceed health_max")
        return self
