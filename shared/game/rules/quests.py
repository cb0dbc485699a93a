"""Quests: drawing options, accepting one, progress on objectives (some counted: "defeat 3
crypt ghouls"), completing a quest, and losing one (its time ran out, or the hero fled its
final fight)."""

from __future__ import annotations

from shared.game.content import ENEMIES, FINALE, QUESTS, QuestTemplate
from shared.game.dice import Dice
from shared.game.phrases import FACTS
from shared.game.phrasing import say
from shared.game.rules.intents import as_clause, has_word, matches_choice, words
from shared.game.rules.outcome import Outcome, Resolution, moment
from shared.game.rules.pacing import quest_can_end_adventure, reached
from shared.game.rules.stats import MAX_LEVEL, hit_points
from shared.models import AdventurePhase, GamePhase, GameState, Moment, Objective, Quest

__all__ = [
    "accept_quest",
    "complete_objective",
    "current_objective",
    "draw_quest_options",
    "fail_quest",
    "quest_choices",
    "quest_from",
    "quest_overdue",
]

ACCEPT_PREFIX = "Accept: "


def quest_from(template: QuestTemplate) -> Quest:
    return Quest(
        quest_id=template.quest_id,
        title=template.title,
        description=template.description,
        objectives=list(template.objectives),
        reward=template.reward,
        time_limit=template.turns,
    )


def _tried(state: GameState) -> set[str]:
    return {q.quest_id for q in (*state.completed_quests, *state.failed_quests)}


def draw_quest_options(state: GameState, dice: Dice) -> list[Quest]:
    """Up to three quests not yet done or lost, drawn for this hero: one that suits their
    class first when there is one, the rest at random."""
    tried = _tried(state)
    available = sorted(q for q in QUESTS if q not in tried)
    craft = state.character_sheet.character_class if state.character_sheet else None
    suited = [q for q in available if craft in QUESTS[q].suits]
    picked = dice.sample(suited, 1) if suited else []
    rest = [q for q in available if q not in picked]
    picked += dice.sample(rest, min(3 - len(picked), len(rest)))
    return [quest_from(QUESTS[quest_id]) for quest_id in picked]


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


def current_objective(state: GameState) -> Objective | None:
    return state.active_quest.current if state.active_quest else None


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
        facts = [say(state, "board", FACTS["board"])]
        facts += [f"{q.title}: {q.description}" for q in state.quest_options]
        return Resolution(state, Outcome("quest_unclear", facts))
    if quest.time_limit is not None:
        quest = quest.model_copy(update={"deadline": state.adventure_turn + quest.time_limit})
    first = quest.objectives[0]
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
    if quest.time_limit is not None:
        facts.append(f"It must be done within {quest.time_limit} turns.")
    return Resolution(
        new_state,
        Outcome(
            "quest_accepted",
            facts,
            moment=moment("quest_taken", f"took up the quest '{quest.title}'", 3),
        ),
    )


def _foe_plural(name: str) -> str:
    template = ENEMIES.get(name)
    return template.plural if template and template.plural else f"{name}s"


def _counted(state: GameState, quest: Quest, objective: Objective) -> tuple[GameState, list[str]]:
    """One more of a counted objective done, not the last."""
    quest = quest.model_copy(update={"progress": quest.progress + 1})
    left = objective.count - quest.progress
    what = _foe_plural(objective.subject) if left > 1 else objective.subject
    facts = [f"{objective.text}: {quest.progress}/{objective.count}. {left} more {what} to go."]
    return state.model_copy(update={"active_quest": quest, "phase": GamePhase.EXPLORATION}), facts


def _finale(state: GameState, facts: list[str]) -> GameState:
    """The climax comes to the hero: the last quest begins at once, and the arc reaches its
    climax with the next turn (`rules.begin_turn`)."""
    finale = quest_from(FINALE)
    first = finale.objectives[0]
    facts.append(
        f"But there is no rest yet. {finale.description} Your task: {as_clause(first.text)}."
    )
    return state.model_copy(
        update={
            "active_quest": finale,
            "combat_state": None,
            "npc_name": None,
            "location": first.location,
            "phase": GamePhase.EXPLORATION,
        }
    )


def _back_at_the_inn(state: GameState, dice: Dice, facts: list[str]) -> GameState:
    """After a quest ends, won or lost: the story closes if its climax has come and it is
    time; the climax comes if it is time but has not (rules.pacing); else the notice board
    offers new quests."""
    ended = state.active_quest
    update: dict[str, object] = {
        "active_quest": None,
        "combat_state": None,
        "npc_name": None,
        "location": "the crossroads inn",
    }
    tried = len(state.completed_quests) + len(state.failed_quests)
    late = quest_can_end_adventure(state.adventure_phase) or tried >= len(QUESTS)
    climaxed = reached(state.adventure_phase, AdventurePhase.CLIMAX)
    if late and not climaxed and (ended is None or ended.quest_id != FINALE.quest_id):
        return _finale(state, facts)
    if late or (ended is not None and ended.quest_id == FINALE.quest_id):
        update["phase"] = GamePhase.EPILOGUE
        facts.append("Your tale has found its ending; all that is left is to tell it.")
    else:
        update["quest_options"] = draw_quest_options(state, dice)
        update["phase"] = GamePhase.QUEST_SELECTION
        facts.append("Back at the crossroads inn, new pleas for help await.")
    return state.model_copy(update=update)


def complete_objective(state: GameState, dice: Dice) -> tuple[GameState, list[str], Moment | None]:
    """The current objective done once more (done outright unless it is counted). Returns
    the new state, what happened, and a moment."""
    quest = state.active_quest
    objective = current_objective(state)
    if quest is None or objective is None:
        return state, [], None
    if quest.progress + 1 < objective.count:
        counted, facts = _counted(state, quest, objective)
        return counted, facts, None
    quest = quest.model_copy(
        update={
            "completed_objectives": [*quest.completed_objectives, objective.text],
            "progress": 0,
        }
    )
    if not quest.is_complete:
        following = quest.current
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
        kind = {"talk": "clue", "explore": "discovery", "fight": "victory"}[objective.kind.value]
        return new_state, facts, moment(kind, f"managed to {as_clause(objective.text)}", 2)
    state = state.model_copy(update={"completed_quests": [*state.completed_quests, quest]})
    state, grown = _level_up(state)
    facts = [f"Quest complete: {quest.title}! You earn {quest.reward}.", *grown]
    state = _back_at_the_inn(state, dice, facts)
    return state, facts, moment("quest_completed", f"completed the quest '{quest.title}'", 4)


def fail_quest(state: GameState, why: str, dice: Dice) -> tuple[GameState, list[str], Moment]:
    """The active quest is lost (`why` says how, as a sentence)."""
    quest = state.active_quest
    assert quest is not None
    lost = quest.model_copy(update={"failed": why})
    state = state.model_copy(update={"failed_quests": [*state.failed_quests, lost]})
    facts = [why, f"The quest is lost: {quest.title}."]
    state = _back_at_the_inn(state, dice, facts)
    return state, facts, moment("quest_failed", f"failed in the quest '{quest.title}'", 3)


def quest_overdue(state: GameState) -> bool:
    """The active quest's time ran out: its last turn (the deadline) was played without
    finishing it (checked between fights: a fight is seen through)."""
    quest = state.active_quest
    return (
        quest is not None
        and quest.deadline is not None
        and state.adventure_turn >= quest.deadline
        and state.combat_state is None
        and state.phase in (GamePhase.EXPLORATION, GamePhase.DIALOGUE)
    )
