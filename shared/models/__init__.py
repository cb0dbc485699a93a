"""The service's data models."""

from shared.models.events import EventName, SessionEvent
from shared.models.state import (
    SCHEMA_VERSION,
    AdventurePhase,
    CharacterDraft,
    CharacterSheet,
    CombatState,
    GamePhase,
    GameState,
    HistoryEntry,
    Moment,
    Objective,
    ObjectiveKind,
    Quest,
)
from shared.models.turns import (
    AgentTokens,
    SpokenLine,
    TokenUsage,
    TurnError,
    TurnRecord,
    TurnResult,
    TurnStatus,
)
from shared.models.views import GameStateView, state_view

__all__ = [
    "AgentTokens",
    "SCHEMA_VERSION",
    "AdventurePhase",
    "CharacterDraft",
    "CharacterSheet",
    "CombatState",
    "EventName",
    "GamePhase",
    "GameState",
    "GameStateView",
    "HistoryEntry",
    "Moment",
    "Objective",
    "ObjectiveKind",
    "Quest",
    "SessionEvent",
    "SpokenLine",
    "TokenUsage",
    "TurnError",
    "TurnRecord",
    "TurnResult",
    "TurnStatus",
    "state_view",
]
