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

__all__ = ["GameStateView", "QuestView", "state_view"]


class QuestView(BaseModel):
    """A quest as a client sees it: objectives by their texts, as API.md has always shown
    them, and the progress and time limit of version 3."""

    quest_id: str
    title: str
    description: str
    objectives: list[str]
    completed_objectives: list[str]
    reward: str
    # The current objective's count so far, when it is counted ("1/3"); else None.
    progress: str | None = None
    # The adventure turn after which the quest is lost (None: no time limit or not taken).
    deadline: int | None = None
    time_limit: int | None = None
    # Why it was lost, for a failed quest.
    failed: str | None = None

    @classmethod
    def of(cls, quest: Quest) -> QuestView:
        current = quest.current
        progress = (
            f"{quest.progress}/{current.count}"
            if current is not None and current.count > 1
            else None
        )
        return cls(
            quest_id=quest.quest_id,
            title=quest.title,
            description=quest.description,
            objectives=[o.text for o in quest.objectives],
            completed_objectives=list(quest.completed_objectives),
            reward=quest.reward,
            progress=progress,
            deadline=quest.deadline,
            time_limit=quest.time_limit,
            failed=quest.failed,
        )


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
    active_quest: QuestView | None
    quest_options: list[QuestView]
    completed_quests: list[QuestView]
    failed_quests: list[QuestView]
    combat_state: CombatState | None
    adventure_completed: bool
    adventure_moments: list[str]
    location: str
    # Why the hero's next attack has advantage ("rested", "inspired", "unseen"), if it does.
    hero_edge: str | None


def state_view(state: GameState) -> GameStateView:
    return GameStateView(
        phase=state.phase,
        health_current=state.health_current,
        health_max=state.health_max,
        current_choices=state.current_choices,
        conversation_history=state.conversation_history,
        adventure_turn=state.adventure_turn,
        adventure_phase=state.adventure_phase,
        max_turns=state.max_turns,
        character_description=state.character_description,
        character_sheet=state.character_sheet,
        character_draft=state.character_draft,
        active_quest=QuestView.of(state.active_quest) if state.active_quest else None,
        quest_options=[QuestView.of(q) for q in state.quest_options],
        completed_quests=[QuestView.of(q) for q in state.completed_quests],
        failed_quests=[QuestView.of(q) for q in state.failed_quests],
        combat_state=state.combat_state,
        adventure_completed=state.adventure_completed,
        adventure_moments=[m.text for m in state.adventure_moments],
        location=state.location,
        hero_edge=state.hero_edge,
    )
