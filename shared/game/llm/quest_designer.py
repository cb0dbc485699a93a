"""The quest designer: with the LLM narrator, the quests on the notice board are written by
an agent for this hero, into the same validated `Quest` model the templates fill.

Its answer must be JSON (a list of quests, or `{"quests": [...]}`, fences and chatter around
it tolerated) and pass every check below; otherwise the board keeps the template quests the
rules drew, and the turn counts a `quests_rejected` repair. The checks keep a designed quest
playable by the same rules: two to four objectives, the last a fight; foes from the game's
bestiary (their stats are the rules', not the model's); difficulties, counts and time limits
in the rules' ranges; a clue for every talk; plain, short, link-free text that carries no
instruction to a model."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.game.content import ENEMIES, FINALE, QUESTS
from shared.game.llm.fence import clean_text
from shared.game.llm.reply import plain_words
from shared.game.rules.outcome import Outcome
from shared.game.rules.safety import REDIRECTED
from shared.models import GamePhase, GameState, Objective, ObjectiveKind, Quest

__all__ = ["QUESTS_REJECTED", "design_prompt", "designer_due", "read_designed"]

QUESTS_REJECTED = "quests_rejected"
# Longer than any board worth reading (900 tokens is some 4,000 characters).
MAX_REPLY = 20_000
_ABILITIES = ("strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma")
_JSON = re.compile(r"[\[{].*[\]}]", re.DOTALL)


def _plain(text: str) -> str:
    """One line of visible text that is no instruction nor link, else a ValueError."""
    cleaned = clean_text(text, 400)
    if cleaned != " ".join(text.split()) or not plain_words(cleaned):
        raise ValueError("not plain text")
    return cleaned


Short = Annotated[str, Field(min_length=2, max_length=80)]


class _DesignedObjective(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: Annotated[str, Field(min_length=3, max_length=90)]
    kind: ObjectiveKind
    location: Short
    subject: Short
    ability: Literal[
        "strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma"
    ] = "wisdom"
    difficulty: int = Field(default=12, ge=8, le=16)
    count: int = Field(default=1, ge=1, le=3)
    clue: Annotated[str, Field(max_length=240)] = ""

    @field_validator("text", "location", "subject", "clue")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        return _plain(value) if value else value


class _DesignedQuest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: Annotated[str, Field(min_length=3, max_length=60)]
    description: Annotated[str, Field(min_length=10, max_length=300)]
    reward: Short
    time_limit: int | None = Field(default=None, ge=8, le=30)
    objectives: list[_DesignedObjective] = Field(min_length=2, max_length=4)

    @field_validator("title", "description", "reward")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        return _plain(value)


def designer_due(state: GameState, outcome: Outcome) -> bool:
    """The board has just been filled by the rules (with template quests): this turn made the
    hero, or ended a quest."""
    return (
        state.phase is GamePhase.QUEST_SELECTION
        and bool(state.quest_options)
        and all(q.quest_id in QUESTS for q in state.quest_options)
        and outcome.kind not in ("quest_unclear", REDIRECTED)
    )


def design_prompt(template: str, state: GameState, context: str) -> str:
    foes = ", ".join(sorted(name for name in ENEMIES if name != FINALE.objectives[-1].subject))
    return template.format(
        context=context,
        count=len(state.quest_options),
        foes=foes,
        abilities=", ".join(_ABILITIES),
    )


def _objective(designed: _DesignedObjective) -> Objective:
    if designed.kind is ObjectiveKind.FIGHT:
        foe = designed.subject.lower().removeprefix("the ").strip()
        if foe not in ENEMIES or foe == FINALE.objectives[-1].subject:
            raise ValueError(f"unknown foe {designed.subject!r}")
        designed = designed.model_copy(update={"subject": foe})
    elif designed.count != 1:
        raise ValueError("only fights are counted")
    if designed.kind is ObjectiveKind.TALK and len(designed.clue) < 10:
        raise ValueError("a talk must give a clue")
    return Objective(**designed.model_dump())


def _quest(designed: _DesignedQuest, taken: set[str]) -> Quest:
    objectives = [_objective(o) for o in designed.objectives]
    if objectives[-1].kind is not ObjectiveKind.FIGHT:
        raise ValueError("a quest ends in a fight")
    digest = hashlib.sha256(designed.title.lower().encode()).hexdigest()[:10]
    quest_id = f"llm-{digest}"
    if quest_id in taken:
        raise ValueError("a quest already played")
    return Quest(
        quest_id=quest_id,
        title=designed.title,
        description=designed.description,
        objectives=objectives,
        reward=designed.reward,
        time_limit=designed.time_limit,
    )


def read_designed(reply: str, state: GameState) -> list[Quest] | None:
    """The designer's quests for `state`'s board (as many as the rules drew), or None when
    the reply does not give that many valid, new, distinct quests."""
    found = _JSON.search(reply[:MAX_REPLY])
    if found is None:
        return None
    try:
        data = json.loads(found.group(0))
    except (ValueError, RecursionError):  # not JSON, or nested past what the parser takes
        return None
    if isinstance(data, dict):
        data = data.get("quests")
    wanted = len(state.quest_options)
    if not isinstance(data, list) or len(data) < wanted:
        return None
    taken = {q.quest_id for q in (*state.completed_quests, *state.failed_quests)}
    try:
        quests = [_quest(_DesignedQuest.model_validate(item), taken) for item in data[:wanted]]
    except (ValidationError, ValueError, TypeError):
        return None
    if len({q.quest_id for q in quests}) != wanted:
        return None
    return quests
