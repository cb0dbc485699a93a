"""The player-facing view of a `GameState`: what API.md promises, and no internals."""

from __future__ import annotations

from pydantic import BaseModel

from shared.models.state import (
    AdventurePhase,
    CharacterDraft,
    CharacterSheet,
    CombatState,
    GamePhase,
    GameState,
    HistoryEntry,
    Quest,
)

__all__ = ["GameStateView", "state_view"]


class GameStateView(BaseModel):
    phase: GamePhase
    health_current: int
    health_max: int
    current_choices: list[str]
    conversation_history: list[HistoryEntry]
    adventure_turn: int
    adventure_phase: AdventurePhase
    max_turns: int
    character_description: str
    character_sheet: CharacterSheet | None
    character_draft: CharacterDraft | None
    active_quest: Quest | None
    quest_options: list[Quest]
    completed_quests: list[Quest]
    combat_state: CombatState | None
    adventure_completed: bool
    adventure_moments: list[str]
    location: str


def state_view(state: GameState) -> GameStateView:
    fields = GameStateView.model_fields.keys()
    return GameStateView.model_validate({name: getattr(state, name) for name in fields})
