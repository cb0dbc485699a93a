"""Character creation as the innkeeper's short interview: who you are, your people, your
craft, where you come from. At most five turns, and skippable at every step.

- Turn 1 offers three ready-made heroes (a quick pick: done at once) or "Create my own hero".
  A free-text description fills in every answer it gives ("I'm Torva, a dwarven knight…" is a
  whole character) and the interview asks only for what is missing.
- Each later turn answers one question (name, people, craft, background) and may answer more;
  "Roll the rest for me" lets the dice answer everything still open.
- An answer the rules cannot read is answered by the dice (and the player is told), so every
  turn fills at least one answer and the interview ends by the fifth turn.
"""

from __future__ import annotations

import re

from shared.game.content import BACKGROUNDS, CLASSES, RACES
from shared.game.dice import Dice
from shared.game.rules.intents import has_word, matches_choice, words
from shared.models import CharacterDraft, GameState

__all__ = [
    "CREATE_OWN",
    "MAX_INTERVIEW_TURNS",
    "QUICK_PICKS",
    "ROLL_REST",
    "Question",
    "answer",
    "interview_choices",
    "next_question",
    "question_text",
    "suggested_names",
]

MAX_INTERVIEW_TURNS = 5
CREATE_OWN = "Create my own hero"
ROLL_REST = "Roll the rest for me"
QUICK_PICKS: dict[str, tuple[str, str, str]] = {
    "Play Brannoc, a dwarf fighter": ("Brannoc", "dwarf", "fighter"),
    "Play Elowen, an elf wizard": ("Elowen", "elf", "wizard"),
    "Play Pip, a halfling rogue": ("Pip", "halfling", "rogue"),
}
NAMES = ["Ash", "Bryn", "Corin", "Dara", "Edric", "Fen", "Gwen", "Hale", "Isolde", "Jory"]
# Letters of any script ([^\W\d_]), as in "Zoë" or "Åsa"; a name may hold ' and -.
_NAME = r"([^\W\d_][^\W\d_'-]*(?:['-][^\W\d_]+)*)"
_NAME_PATTERN = re.compile(r"(?i:my name is|i am|i'm|called|named|call me|name's)\s+" + _NAME)
_PLAIN_NAME = re.compile(r"^\s*" + _NAME + r"[\s.!]*$")
# "Sera, human, healer": a capitalised first word before a comma names the hero, unless it is
# a greeting or a filler ("Hi, I am an elf wizard").
_LISTED_NAME = re.compile(r"^\s*" + _NAME + r"\s*,")
_NOT_NAMES = frozenset(
    "hi hello hey greetings ok okay well yes yeah yep no nope sure so alright right um uh "
    "fine oh ah hmm please thanks".split()
)
_MAX_NAME = 24


class Question:
    NAME = "name"
    RACE = "race"
    CLASS = "character_class"
    BACKSTORY = "backstory"
    ORDER = (NAME, RACE, CLASS, BACKSTORY)


_ASKED = {
    Question.NAME: "'And what do folk call you?' asks the innkeeper, pen hovering over the ledger.",
    Question.RACE: "'Which people are yours?' the innkeeper asks, eyeing your boots.",
    Question.CLASS: "'And your craft, when trouble comes?' the innkeeper asks.",
    Question.BACKSTORY: "'Last thing: what drove you to the road?' the innkeeper asks softly.",
}


def _three(options: list[str], seed: int, stride: int) -> list[str]:
    """Three of `options` to offer, fixed by the session's seed (the choices are at most four,
    with "Roll the rest"; any other answer can be typed)."""
    start = seed % len(options)
    return [options[(start + step * stride) % len(options)] for step in range(3)]


def suggested_names(seed: int) -> list[str]:
    """Three names to offer, fixed by the session's seed."""
    return _three(NAMES, seed, 3)


def _offered(question: str, seed: int) -> list[str]:
    if question == Question.NAME:
        return suggested_names(seed)
    if question == Question.RACE:
        return [race.capitalize() for race in _three(list(RACES), seed // 7, 2)]
    if question == Question.CLASS:
        return [name.capitalize() for name in _three(list(CLASSES), seed // 3, 2)]
    return list(BACKGROUNDS)


def next_question(draft: CharacterDraft) -> str | None:
    return next((q for q in Question.ORDER if getattr(draft, q) is None), None)


def question_text(question: str) -> str:
    return _ASKED[question]


def interview_choices(state: GameState) -> list[str]:
    draft = state.character_draft
    if draft is None:
        return [*QUICK_PICKS, CREATE_OWN]
    question = next_question(draft)
    assert question is not None, "a finished draft is a character sheet"
    return [*_offered(question, state.seed), ROLL_REST]


def _race_in(text: str) -> str | None:
    return next(
        (race for race, keys in RACES.items() if any(has_word(text, k, whole=True) for k in keys)),
        None,
    )


def _class_in(text: str) -> str | None:
    return next(
        (c.name for c in CLASSES.values() if any(has_word(text, k) for k in c.keywords)), None
    )


def _name_in(action: str, *, asked: bool) -> str | None:
    """A name the player gave ("my name is …"; or, asked for one, a lone word): its first
    letter capitalised, the rest as written ("McAllister" stays so)."""
    text = action.strip().replace("\u2019", "'")
    # In a sentence a name is capitalised ("I am a dwarf named Grusk" names Grusk, not "A").
    found = next(
        (
            m
            for m in _NAME_PATTERN.finditer(text)
            if m.group(1)[0].isupper() and len(m.group(1)) > 1
        ),
        None,
    )
    if found is None and asked:
        found = _PLAIN_NAME.match(text)
    if found is None:
        listed = _LISTED_NAME.match(text)
        lowered = words(listed.group(1)) if listed else ""
        if (
            listed
            and listed.group(1)[0].isupper()
            and not _race_in(lowered)
            and not _class_in(lowered)
        ):
            found = listed
    if found is None or len(found.group(1)) > _MAX_NAME:
        return None
    name = found.group(1)
    return name[:1].upper() + name[1:]


def _read(draft: CharacterDraft, action: str, question: str | None) -> CharacterDraft:
    """Every answer `action` gives, without overwriting earlier ones."""
    text = words(action)
    found: dict[str, str | None] = {
        Question.NAME: _name_in(action, asked=question == Question.NAME),
        Question.RACE: _race_in(text),
        Question.CLASS: _class_in(text),
    }
    background = matches_choice(action, list(BACKGROUNDS))
    if background is not None:
        found[Question.BACKSTORY] = BACKGROUNDS[background]
    elif question == Question.BACKSTORY and action.strip():
        found[Question.BACKSTORY] = action.strip()[:300]
    update = {k: v for k, v in found.items() if v is not None and getattr(draft, k) is None}
    return draft.model_copy(update=update)


def _roll(draft: CharacterDraft, question: str, dice: Dice) -> CharacterDraft:
    if question == Question.NAME:
        value = dice.choice(NAMES)
    elif question == Question.RACE:
        value = dice.choice(sorted(RACES))
    elif question == Question.CLASS:
        value = dice.choice(sorted(CLASSES))
    else:
        value = BACKGROUNDS[dice.choice(list(BACKGROUNDS))]
    return draft.model_copy(update={question: value})


def answer(
    draft: CharacterDraft | None, action: str, dice: Dice, *, seed: int
) -> tuple[CharacterDraft, list[str]]:
    """The draft after this turn's answer, and what the dice decided for the player (to be
    told). A draft with every answer is a character ready to be rolled."""
    if draft is None:
        # The first turn: a whole description, if that is what the player wrote.
        started = CharacterDraft(turns=1, description=action.strip()[:300])
        if matches_choice(action, [CREATE_OWN]) is not None:
            return started.model_copy(update={"description": ""}), []
        if matches_choice(action, [ROLL_REST]) is not None:
            started = started.model_copy(update={"description": ""})
            while (still_open := next_question(started)) is not None:
                started = _roll(started, still_open, dice)
            return started, []
        read = _read(started, action, None)
        if read.name and read.race and read.character_class and read.backstory is None:
            read = read.model_copy(update={"backstory": action.strip()[:300]})
        return read, []
    question = next_question(draft)
    assert question is not None
    draft = draft.model_copy(update={"turns": draft.turns + 1})
    decided: list[str] = []
    rolling = matches_choice(action, [ROLL_REST]) is not None
    if not rolling:
        chosen = matches_choice(action, _offered(question, seed))
        if chosen is not None:
            value = {
                Question.NAME: chosen,
                Question.BACKSTORY: BACKGROUNDS.get(chosen, chosen),
            }.get(question, chosen.lower())
            draft = draft.model_copy(update={question: value})
        draft = _read(draft, action, question)
        if getattr(draft, question) is None:
            draft = _roll(draft, question, dice)
            decided.append(f"The innkeeper decides for you: {getattr(draft, question)}.")
    if rolling or draft.turns >= MAX_INTERVIEW_TURNS:
        while (still_open := next_question(draft)) is not None:
            draft = _roll(draft, still_open, dice)
    return draft, decided
