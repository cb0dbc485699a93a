"""Quests: drawing options, accepting one, completing objectives and quests."""

from __future__ import annotations

from shared.game.content import QUESTS, ObjectiveTemplate, QuestTemplate
from shared.game.dice import Dice
from shared.game.rules.intents import as_clause, has_word, matches_choice, words
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.pacing import quest_can_end_adventure
from shared.game.rules.stats import MAX_LEVEL, hit_points
from shared.models import GamePhase, GameState, Quest

__all__ = [
    "accept_quest",
    "complete_objective",
    "current_objective",
    "draw_quest_options",
    "quest_choices",
]

ACCEPT_PREFIX = "Accept: "


def _to_quest(template: QuestTemplate) -> Quest:
    return Quest(
        quest_id=template.quest_id,
        title=template.title,
        description=template.description,
        objectives=[o.text for o in template.objectives],
        reward=template.reward,
    )


def draw_quest_options(state: GameState, dice: Dice) -> list[Quest]:
    """Up to three quests not yet done, drawn for this hero: one that suits their class
    first when there is one, the rest at random."""
    done = {q.quest_id for q in state.completed_quests}
    available = sorted(q for q in QUESTS if q not in done)
    craft = state.character_sheet.character_class if state.character_sheet else None
    suited = [q for q in available if craft in QUESTS[q].suits]
    picked = dice.sample(suited, 1) if suited else []
    rest = [q for q in available if q not in picked]
    picked += dice.sample(rest, min(3 - len(picked), len(rest)))
    return [_to_quest(QUESTS[quest_id]) for quest_id in picked]


def _level_up(state: GameState) -> tuple[GameState, list[str]]:
    sheet = state.character_sheet
    if sheet is None or sheet.level >= MAX_LEVEL:
        return state, []
    sheet = sheet.model_copy(update={"level": sheet.level + 1})
    health = hit_points(sheet)
    # A night at the inn between quests: back to full health.
    levelled = state.model_copy(
        update={"character_sheet": sheet, "health_max": health, "health_current": health}
    )
    return levelled, [f"You reach level {sheet.level}; your health rises to {health}."]


def quest_choices(options: list[Quest]) -> list[str]:
    return [f"{ACCEPT_PREFIX}{q.title}" for q in options]


def current_objective(state: GameState) -> ObjectiveTemplate | None:
    quest = state.active_quest
    if quest is None:
        return None
    target = quest.next_objective
    return next((o for o in QUESTS[quest.quest_id].objectives if o.text == target), None)


def _quest_named(action: str, options: list[Quest]) -> Quest | None:
    picked = matches_choice(action, quest_choices(options))
    if picked is not None:
        return options[quest_choices(options).index(picked)]
    text = words(action)
    for quest in options:
        key_words = [w for w in words(quest.title).split() if w not in {"the", "of", "a"}]
        if any(has_word(text, w) for w in key_words):
            return quest
    return None


def accept_quest(state: GameState, action: str, dice: Dice) -> Resolution:
    quest = _quest_named(action, state.quest_options)
    if quest is None:
        facts = ["The notice board offers these tasks; which will you take?"]
        facts += [f"{q.title}: {q.description}" for q in state.quest_options]
        return Resolution(state, Outcome("quest_unclear", facts))
    first = QUESTS[quest.quest_id].objectives[0]
    new_state = state.model_copy(
        update={
            "active_quest": quest,
            "quest_options": [],
            "phase": GamePhase.EXPLORATION,
            "location": first.location,
        }
    )
    facts = [
        f"You take up the quest: {quest.title}. {quest.description}",
        f"Your first task: {as_clause(first.text)}. The road leads you to {first.location}.",
    ]
    return Resolution(
        new_state, Outcome("quest_accepted", facts, moment=f"took up the quest '{quest.title}'")
    )


def complete_objective(state: GameState, dice: Dice) -> tuple[GameState, list[str], str | None]:
    """Mark the current objective done. Returns the new state, what happened, and a moment."""
    quest = state.active_quest
    objective = current_objective(state)
    if quest is None or objective is None:
        return state, [], None
    quest = quest.model_copy(
        update={"completed_objectives": [*quest.completed_objectives, objective.text]}
    )
    if not quest.is_complete:
        following = current_objective(state.model_copy(update={"active_quest": quest}))
        assert following is not None
        new_state = state.model_copy(
            update={
                "active_quest": quest,
                "location": following.location,
                "phase": GamePhase.EXPLORATION,
                "npc_name": None,
            }
        )
        facts = [
            f"Done: {as_clause(objective.text)}.",
            f"Next: {as_clause(following.text)}, at {following.location}.",
        ]
        return new_state, facts, None
    completed = [*state.completed_quests, quest]
    state, grown = _level_up(state)
    facts = [f"Quest complete: {quest.title}! You earn {quest.reward}.", *grown]
    ends = quest_can_end_adventure(state.adventure_turn, state.max_turns) or len(completed) == len(
        QUESTS
    )
    update: dict[str, object] = {
        "active_quest": None,
        "completed_quests": completed,
        "combat_state": None,
        "npc_name": None,
        "location": "the crossroads inn",
    }
    if ends:
        update["phase"] = GamePhase.EPILOGUE
        facts.append("Your tale has found its ending; all that is left is to tell it.")
    else:
        options = draw_quest_options(state.model_copy(update={"completed_quests": completed}), dice)
        update["quest_options"] = options
        update["phase"] = GamePhase.QUEST_SELECTION
        facts.append("Back at the crossroads inn, new pleas for help await.")
    return state.model_copy(update=update), facts, f"completed the quest '{quest.title}'"
