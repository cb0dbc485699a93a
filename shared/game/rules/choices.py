"""The choices offered to the player: a function of the state alone (1 to 4, distinct)."""

from __future__ import annotations

from shared.game.rules.ending import EPILOGUE_CHOICE
from shared.game.rules.interview import interview_choices
from shared.game.rules.quests import current_objective, quest_choices
from shared.models import GamePhase, GameState, ObjectiveKind

__all__ = ["choices_for"]


def _exploration_choices(state: GameState) -> list[str]:
    objective = current_objective(state)
    if objective is None:
        return ["Look around"]
    subject = objective.subject
    if objective.kind is ObjectiveKind.FIGHT:
        return [f"Confront the {subject}", f"Sneak up on the {subject}", "Rest for a moment"]
    if objective.kind is ObjectiveKind.TALK:
        return [f"Talk to {subject}", "Look around", "Rest for a moment"]
    return [f"Search for {subject}", "Press on carefully", "Rest for a moment", "Look around"]


def choices_for(state: GameState) -> list[str]:
    if state.adventure_completed:
        return []
    if state.phase is GamePhase.EPILOGUE:
        return [EPILOGUE_CHOICE]
    if state.clarify_choices:
        return list(state.clarify_choices)
    if state.phase is GamePhase.CHARACTER_CREATION:
        return interview_choices(state)
    if state.phase is GamePhase.QUEST_SELECTION:
        return quest_choices(state.quest_options)
    if state.phase is GamePhase.COMBAT and state.combat_state is not None:
        return [f"Attack the {state.combat_state.enemy_name}", "Defend", "Flee"]
    if state.phase is GamePhase.DIALOGUE and state.npc_name:
        npc = state.npc_name
        return [f"Ask {npc} for help", f"Persuade {npc} with a story", f"Threaten {npc}", "Leave"]
    return _exploration_choices(state)
