"""`GameState`: everything the game remembers about one player's adventure."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

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
    "Quest",
]

# 2: the creation interview (`character_draft`) and the epilogue phase. Version-1 states
# read as they are; the number rises so that code that knows only version 1 refuses states
# it would misread (see migrations).
SCHEMA_VERSION = 2


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


class Quest(_Model):
    quest_id: str
    title: str
    description: str
    objectives: list[str]
    completed_objectives: list[str] = Field(default_factory=list)
    reward: str = ""

    @property
    def is_complete(self) -> bool:
        return all(o in self.completed_objectives for o in self.objectives)

    @property
    def next_objective(self) -> str | None:
        return next((o for o in self.objectives if o not in self.completed_objectives), None)


class CombatState(_Model):
    enemy_name: str
    enemy_health: int = Field(ge=0)
    enemy_health_max: int = Field(gt=0)
    enemy_armor: int = Field(ge=0)
    enemy_attack_bonus: int
    enemy_damage: int = Field(gt=0)
    round: int = Field(default=1, ge=1)
    player_first: bool = True
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
    adventure_turn: int = Field(default=0, ge=0)
    adventure_phase: AdventurePhase = AdventurePhase.SETUP
    max_turns: int = Field(default=40, ge=5)
    adventure_completed: bool = False
    adventure_moments: list[str] = Field(default_factory=list)
    location: str = "the crossroads inn"
    npc_name: str | None = None
    # When an LLM rewords the choices, what each one means to the rules, in the same order
    # (empty when current_choices are the rules' own words). Not shown to the player.
    choice_actions: list[str] = Field(default_factory=list)
    jester_last_turn: int = -1000

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
