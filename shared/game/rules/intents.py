"""Reading a player's words: which choice they picked, or what they mean to do."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["Intent", "as_clause", "has_word", "intent_of", "matches_choice", "words"]


class Intent(StrEnum):
    ATTACK = "attack"
    DEFEND = "defend"
    FLEE = "flee"
    TALK = "talk"
    SEARCH = "search"
    CAREFUL = "careful"
    SNEAK = "sneak"
    REST = "rest"
    LOOK = "look"
    LEAVE = "leave"
    OTHER = "other"


_KEYWORDS: list[tuple[Intent, tuple[str, ...]]] = [
    (Intent.FLEE, ("flee", "run away", "escape", "retreat")),
    (Intent.DEFEND, ("defend", "block", "parry", "shield", "guard", "dodge")),
    (Intent.SNEAK, ("sneak", "creep", "stealth", "ambush")),
    (
        Intent.ATTACK,
        (
            "attack",
            "fight",
            "strike",
            "hit",
            "slash",
            "stab",
            "shoot",
            "cast",
            "kill",
            "confront",
            "charge",
            "swing",
        ),
    ),
    (Intent.LEAVE, ("leave", "goodbye", "walk away", "farewell")),
    (Intent.TALK, ("talk", "ask", "speak", "question", "persuade", "greet", "tell", "say")),
    (Intent.REST, ("rest", "sleep", "heal", "camp", "bandage")),
    (Intent.CAREFUL, ("press on", "carefully", "continue", "go on", "move on", "climb")),
    (
        Intent.SEARCH,
        (
            "search",
            "explore",
            "investigate",
            "find",
            "track",
            "follow",
            "ring",
            "examine",
            "dig",
            "open",
        ),
    ),
    (Intent.LOOK, ("look", "listen", "observe", "wait", "watch")),
]


def as_clause(text: str) -> str:
    """A capitalised task ("Ask old Maren…") to follow a colon: first letter lowered only, so
    names keep their capitals."""
    return text[:1].lower() + text[1:]


def words(text: str) -> str:
    # Curly apostrophes (as phones type them) read as straight ones.
    return re.sub(r"\s+", " ", text.strip().lower().replace("\u2019", "'"))


def has_word(text: str, key: str, *, whole: bool = False) -> bool:
    """Whether `text` (from `words`) has a word starting with `key` (`whole`: that is `key`),
    so "elf" is not found in "herself" nor "king" in "looking"."""
    end = r"\b" if whole else ""
    return re.search(r"\b" + re.escape(key) + end, text) is not None


def intent_of(action: str) -> Intent:
    text = words(action)
    for intent, keys in _KEYWORDS:
        if any(has_word(text, k) for k in keys):
            return intent
    return Intent.OTHER


def matches_choice(action: str, choices: list[str]) -> str | None:
    text = words(action)
    return next((c for c in choices if words(c) == text), None)
