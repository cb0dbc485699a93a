"""When the player's words could mean either of two things that lead to different places
(`intents.read_action` is unsure), the turn asks instead of guessing: the two readings are
offered as the next choices, worded so that picking one is read without doubt, and nothing
else happens (no roll, no blow from the foe, no quest lost to its time limit, no closing of the
story; the turn still counts on the adventure's clock)."""

from __future__ import annotations

from shared.game.rules.intents import Intent, Reading
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.quests import current_objective
from shared.models import GamePhase, GameState, ObjectiveKind

__all__ = ["ABANDON_PREFIX", "UNSURE_OUTCOME", "clarify", "reading_choice"]

ABANDON_PREFIX = "Give up on "
UNSURE_OUTCOME = "unsure"


def _combat_choice(state: GameState, intent: Intent) -> str:
    foe = state.combat_state.enemy_name if state.combat_state else "foe"
    return {
        Intent.DEFEND: "Defend",
        Intent.FLEE: "Flee",
        Intent.LOOK: f"Study the {foe}",
        Intent.REST: "Catch my breath",
        Intent.TALK: f"Call out to the {foe}",
    }.get(intent, f"Attack the {foe}")


def _dialogue_choice(state: GameState, intent: Intent) -> str:
    npc = state.npc_name or "them"
    return {
        Intent.THREATEN: f"Threaten {npc}",
        Intent.ATTACK: f"Attack {npc}",
        Intent.LEAVE: "Leave",
        Intent.LOOK: f"Listen to {npc}",
    }.get(intent, f"Ask {npc} for help")


def _exploration_choice(state: GameState, intent: Intent) -> str:
    objective = current_objective(state)
    kind = objective.kind if objective else None
    subject = objective.subject if objective else "the way"
    quest = state.active_quest.title if state.active_quest else "the quest"
    choices = {
        Intent.SEARCH: f"Search for {subject}"
        if kind is ObjectiveKind.EXPLORE
        else "Search the area",
        Intent.CAREFUL: "Press on carefully",
        Intent.SNEAK: f"Sneak up on the {subject}"
        if kind is ObjectiveKind.FIGHT
        else "Move quietly",
        Intent.REST: "Rest for a moment",
        Intent.ATTACK: f"Confront the {subject}"
        if kind is ObjectiveKind.FIGHT
        else "Fight whatever lurks here",
        Intent.TALK: f"Talk to {subject}"
        if kind is ObjectiveKind.TALK
        else "Call out for anyone nearby",
        Intent.LEAVE: f"{ABANDON_PREFIX}{quest}",
    }
    return choices.get(intent, "Look around")


def reading_choice(state: GameState, intent: Intent) -> str:
    """`intent` as a choice of the state's phase."""
    if state.phase is GamePhase.COMBAT:
        return _combat_choice(state, intent)
    if state.phase is GamePhase.DIALOGUE:
        return _dialogue_choice(state, intent)
    return _exploration_choice(state, intent)


def clarify(state: GameState, reading: Reading) -> Resolution:
    """The turn that asks which reading was meant."""
    offered = list(dict.fromkeys(reading_choice(state, i) for i in reading.alternatives))
    asked = state.model_copy(update={"clarify_choices": offered})
    question = " or ".join(f"'{choice}'" for choice in offered)
    return Resolution(asked, Outcome(UNSURE_OUTCOME, [f"Which do you mean: {question}?"]))
