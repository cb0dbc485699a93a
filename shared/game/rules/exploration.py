"""Exploration and dialogue: checks against the current objective.

A rest heals (a fighter's second wind and a cleric's prayer heal more) and leaves the hero
rested: their next attack has advantage. A ranger searches the wild with advantage, and a
wizard with their intelligence when it is the better ability. A talk
that succeeds gives the clue the next step needs, in words that name it."""

from __future__ import annotations

from shared.game.content import ROAMING_ENEMY
from shared.game.dice import Dice, Edge, modifier
from shared.game.phrases import FACTS
from shared.game.phrasing import say
from shared.game.rules.clarify import ABANDON_PREFIX, clarify
from shared.game.rules.combat import start_combat
from shared.game.rules.intents import Intent, Reading, as_clause, matches_choice, read_action
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.quests import complete_objective, current_objective, fail_quest
from shared.models import CharacterSheet, GamePhase, GameState, Objective, ObjectiveKind

__all__ = ["converse", "explore"]


def _heal(state: GameState, amount: int) -> GameState:
    return state.model_copy(
        update={"health_current": min(state.health_max, state.health_current + amount)}
    )


def _succeed(state: GameState, dice: Dice, facts: list[str], checks: list[str]) -> Resolution:
    new_state, more, done = complete_objective(state, dice)
    return Resolution(
        new_state, Outcome("objective_done", facts + more, moment=done, checks=checks)
    )


def _rest(state: GameState, sheet: CharacterSheet, dice: Dice) -> Resolution:
    rolled = dice.throw("2d6" if sheet.character_class == "fighter" else "1d6+1")
    healed = rolled.total
    if sheet.character_class == "cleric":
        healed += max(1, modifier(sheet.wisdom))
    rested = _heal(state, healed).model_copy(update={"hero_edge": "rested"})
    told = say(state, "rested", FACTS["rested"], healed=healed)
    return Resolution(rested, Outcome("rested", [told], checks=[f"Rest {rolled.describe()}"]))


def _search(
    state: GameState,
    sheet: CharacterSheet,
    objective: Objective,
    dice: Dice,
    *,
    careful: bool,
) -> Resolution:
    ability = "dexterity" if careful else objective.ability
    if sheet.character_class == "wizard" and sheet.intelligence > getattr(sheet, ability):
        ability = "intelligence"
    target = objective.difficulty - (2 if careful else 0)
    edge = Edge.ADVANTAGE if sheet.character_class == "ranger" else Edge.NONE
    check = dice.check(modifier(getattr(sheet, ability)), target, edge)
    checks = [check.describe(ability.capitalize())]
    if check.success:
        return _succeed(state, dice, [f"You find {objective.subject}."], checks)
    if careful:
        return Resolution(
            *start_combat(
                state,
                ROAMING_ENEMY,
                dice,
                lead=say(state, "ambush", FACTS["ambush"]),
                objective=None,
                surprise=False,
                kind="ambushed",
                checks=checks,
            )
        )
    hurt = dice.roll(4)
    hazard = state.model_copy(update={"health_current": max(1, state.health_current - hurt)})
    return Resolution(
        hazard,
        Outcome(
            "search_failed",
            [say(state, "search", FACTS["search_fails"], subject=objective.subject, hurt=hurt)],
            checks=checks,
        ),
    )


def _approach(
    state: GameState,
    sheet: CharacterSheet,
    objective: Objective,
    dice: Dice,
    intent: Intent,
) -> Resolution:
    if intent is Intent.SNEAK:
        check = dice.check(modifier(sheet.dexterity), 12)
        verdict = "unseen" if check.success else "but it hears you coming"
        return Resolution(
            *start_combat(
                state,
                objective.subject,
                dice,
                lead=f"You creep up on the {objective.subject}, {verdict}.",
                objective=objective.text,
                surprise=check.success,
                checks=[check.describe("Stealth (dexterity)")],
            )
        )
    return Resolution(
        *start_combat(
            state,
            objective.subject,
            dice,
            lead=say(state, "confront", FACTS["confront"], foe=objective.subject),
            objective=objective.text,
        )
    )


def _abandon(state: GameState, dice: Dice) -> Resolution:
    """The player confirmed (by the choice the turn offered) that they give the quest up."""
    quest = state.active_quest
    assert quest is not None
    why = say(state, "abandon", FACTS["abandon"], quest=quest.title)
    given_up, facts, lost = fail_quest(state, why, dice)
    return Resolution(given_up, Outcome("quest_abandoned", facts, moment=lost))


def explore(state: GameState, action: str, dice: Dice) -> Resolution:
    objective, sheet = current_objective(state), state.character_sheet
    assert objective is not None and sheet is not None
    quest = state.active_quest
    if quest is not None and matches_choice(action, [f"{ABANDON_PREFIX}{quest.title}"]):
        return _abandon(state, dice)
    reading = read_action(action, GamePhase.EXPLORATION)
    if reading.intent is Intent.LEAVE:
        # Giving up a quest is never guessed: the turn asks.
        reading = Reading(Intent.UNSURE, (Intent.LEAVE, Intent.CAREFUL))
    if reading.intent is Intent.UNSURE:
        return clarify(state, reading)
    intent = reading.intent
    if intent is Intent.REST:
        return _rest(state, sheet, dice)
    if objective.kind is ObjectiveKind.FIGHT and intent in (
        Intent.ATTACK,
        Intent.SNEAK,
        Intent.SEARCH,
        Intent.CAREFUL,
    ):
        return _approach(state, sheet, objective, dice, intent)
    if objective.kind is ObjectiveKind.TALK and intent is Intent.TALK:
        talking = state.model_copy(
            update={"phase": GamePhase.DIALOGUE, "npc_name": objective.subject}
        )
        greeted = say(state, "greet", FACTS["talk_starts"], npc=objective.subject)
        return Resolution(talking, Outcome("dialogue_started", [greeted]))
    if objective.kind is ObjectiveKind.EXPLORE and intent in (
        Intent.SEARCH,
        Intent.CAREFUL,
        Intent.OTHER,
    ):
        return _search(state, sheet, objective, dice, careful=intent is Intent.CAREFUL)
    if intent is Intent.ATTACK:
        return Resolution(
            *start_combat(
                state,
                ROAMING_ENEMY,
                dice,
                lead=say(state, "noise", FACTS["noise"]),
                objective=None,
            )
        )
    looked = say(state, "looked", FACTS["looked"], task=as_clause(objective.text))
    return Resolution(state, Outcome("looked", [looked]))


_DIALOGUE_ABILITY = {
    Intent.THREATEN: "strength",
    Intent.ATTACK: "strength",  # rough handling, in a talk: a threat
    Intent.LOOK: "wisdom",  # patience: letting them speak
}


def converse(state: GameState, action: str, dice: Dice) -> Resolution:
    objective, sheet = current_objective(state), state.character_sheet
    assert objective is not None and sheet is not None
    npc = state.npc_name or objective.subject
    reading = read_action(action, GamePhase.DIALOGUE)
    if reading.intent is Intent.UNSURE:
        return clarify(state, reading)
    if reading.intent is Intent.LEAVE:
        left = state.model_copy(update={"phase": GamePhase.EXPLORATION, "npc_name": None})
        bye = say(state, "leave", FACTS["talk_leaves"], npc=npc)
        return Resolution(left, Outcome("dialogue_left", [bye]))
    ability = _DIALOGUE_ABILITY.get(reading.intent, "charisma")
    check = dice.check(modifier(getattr(sheet, ability)), objective.difficulty)
    checks = [check.describe(ability.capitalize())]
    if check.success:
        told = objective.clue or f"{npc} tells you where to go next."
        return _succeed(state, dice, [f"{npc} confides in you: {told}"], checks)
    return Resolution(
        state,
        Outcome(
            "dialogue_failed",
            [say(state, "unmoved", FACTS["talk_fails"], npc=npc)],
            checks=checks,
        ),
    )
