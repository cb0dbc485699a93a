"""Character creation: the interview's answers (or a quick pick) become a `CharacterSheet`
with rolled abilities, and the notice board offers quests for that hero."""

from __future__ import annotations

from shared.game.content import CLASSES, ClassTemplate
from shared.game.dice import Dice
from shared.game.rules.intents import matches_choice
from shared.game.rules.interview import QUICK_PICKS, answer, next_question
from shared.game.rules.outcome import Outcome, Resolution, moment
from shared.game.rules.quests import draw_quest_options
from shared.game.rules.stats import hit_points
from shared.models import CharacterDraft, CharacterSheet, GamePhase, GameState

__all__ = ["create_character"]

_ABILITIES = ("strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma")


def _roll_sheet(
    name: str, race: str, template: ClassTemplate, backstory: str, dice: Dice
) -> CharacterSheet:
    scores = sorted((dice.ability_score() for _ in range(6)), reverse=True)
    stats = dict(zip(template.priorities, scores, strict=True))
    return CharacterSheet(
        name=name,
        race=race,
        character_class=template.name,
        strength=stats["strength"],
        dexterity=stats["dexterity"],
        constitution=stats["constitution"],
        intelligence=stats["intelligence"],
        wisdom=stats["wisdom"],
        charisma=stats["charisma"],
        equipment=list(template.equipment),
        backstory=backstory,
    )


def _interview_turn(state: GameState, draft: CharacterDraft, decided: list[str]) -> Resolution:
    known = [
        f"{label} {value}"
        for label, value in (
            ("name:", draft.name),
            ("people:", draft.race),
            ("craft:", draft.character_class),
        )
        if value
    ]
    facts = [f"The innkeeper writes in the ledger: {'; '.join(known)}."] if known else []
    new_state = state.model_copy(
        update={
            "character_draft": draft,
            "character_description": draft.description or state.character_description,
        }
    )
    return Resolution(new_state, Outcome("interview", [*facts, *decided]))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def create_character(state: GameState, action: str, dice: Dice) -> Resolution:
    pick = matches_choice(action, list(QUICK_PICKS))
    if pick is not None:
        name, race, class_name = QUICK_PICKS[pick]
        weapon = CLASSES[class_name].weapon
        draft = CharacterDraft(
            description=pick,
            name=name,
            race=race,
            character_class=class_name,
            backstory=f"{name} left home with little more than a {weapon} and a vow.",
        )
        decided: list[str] = []
    else:
        draft, decided = answer(state.character_draft, action, dice, seed=state.seed)
        if next_question(draft) is not None:
            return _interview_turn(state, draft, decided)
    assert draft.name and draft.race and draft.character_class and draft.backstory is not None
    sheet = _roll_sheet(
        draft.name, draft.race, CLASSES[draft.character_class], draft.backstory, dice
    )
    health = hit_points(sheet)
    hero = f"{sheet.name}, {_article(sheet.race)} {sheet.race} {sheet.character_class}"
    created = state.model_copy(
        update={
            # What the player said of their hero: their own description, the pick, or the
            # interview's answers.
            "character_description": draft.description or f"{hero}. {sheet.backstory}",
            "character_sheet": sheet,
            "character_draft": None,
            "health_max": health,
            "health_current": health,
            "phase": GamePhase.QUEST_SELECTION,
        }
    )
    created = created.model_copy(update={"quest_options": draw_quest_options(created, dice)})
    stats = ", ".join(f"{ability[:3].upper()} {getattr(sheet, ability)}" for ability in _ABILITIES)
    facts = [
        *decided,
        f"You are {hero} carrying {', '.join(sheet.equipment)}.",
        f"Your abilities: {stats}. Health {health}.",
        "At the crossroads inn, three pleas for help are pinned to the notice board.",
    ]
    return Resolution(
        created,
        Outcome(
            "character_created",
            facts,
            moment=moment("beginning", "set out from the crossroads inn", 2),
        ),
    )
