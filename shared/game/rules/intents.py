"""Reading a player's words: which choice they picked, or what they mean to do.

`read_action` weighs cues (verbs and phrases, each with a weight) for every intent, counts
the one said first a little more (the main verb usually leads: "I bash it with my shield"),
skips cues under a negation ("don't attack"), and folds the phase's impossible readings into
the ones they mean there (searching in a fight is studying the foe). When the two best
readings are equally strong and lead to different things, it says it is unsure: the turn
then asks which was meant instead of guessing (`rules.clarify`). The labelled set in
tests/shared/game/data/intents.tsv holds it to at least 95 %."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from shared.models import GamePhase

__all__ = [
    "Intent",
    "Reading",
    "as_clause",
    "has_word",
    "intent_of",
    "matches_choice",
    "read_action",
    "words",
]


class Intent(StrEnum):
    ATTACK = "attack"
    DEFEND = "defend"
    FLEE = "flee"
    TALK = "talk"
    THREATEN = "threaten"
    SEARCH = "search"
    CAREFUL = "careful"
    SNEAK = "sneak"
    REST = "rest"
    LOOK = "look"
    LEAVE = "leave"
    OTHER = "other"
    # Two readings equally likely: the turn asks which one.
    UNSURE = "unsure"


@dataclass(frozen=True)
class Reading:
    intent: Intent
    # For UNSURE: the two readings to offer, the stronger (or first said) first.
    alternatives: tuple[Intent, ...] = ()


_I = Intent
# (intent, pattern, weight): a pattern is a regular expression over `words(action)`.
_CUES: list[tuple[Intent, str, float]] = [
    (_I.ATTACK, r"\b(?:attack|fight|strike|hit|slash|stab|shoot|kill|charge|swing|bash)", 2),
    (_I.ATTACK, r"\b(?:smash|punch|kick|lunge|thrust|hack|whack|fireball|firebolt|smite)", 2),
    (_I.ATTACK, r"\b(?:hurl|cleave|impale|maul|loose)|\bshoot at\b", 2),
    (
        _I.ATTACK,
        r"\bfire (?:\w+ )?(?:arrows?|bolts?|shots?)\b|\b(?:lightning|magic missile|ray of)",
        2,
    ),
    (_I.ATTACK, r"\bcast\b", 1),
    (_I.ATTACK, r"\bfire (?:an? |my )?(?:arrow|bolt|at)|\bthrow\b.*\bat\b|\bgo for the\b", 2),
    (_I.ATTACK, r"\b(?:confront|challenge|engage|assault|slay)", 2),
    (_I.ATTACK, r"\bkeep fighting\b", 3),
    (_I.ATTACK, r"\bdraw (?:my|a|the) (?:sword|weapon|blade|dagger|bow|axe|mace)", 1),
    (_I.DEFEND, r"\b(?:defend|block|parry|dodge|duck|brace)", 2),
    (_I.DEFEND, r"^(?:i )?guard\b|\b(?:on|my|and) guard\b|\bguard (?:myself|me)\b", 2),
    (_I.DEFEND, r"\braise (?:my|a|the) shield|\btake cover\b|\bhold my ground\b", 3),
    (_I.DEFEND, r"\b(?:watch|wait) for an opening\b", 3),
    (_I.DEFEND, r"\bshield\b", 1),
    (_I.DEFEND, r"\bwith (?:my|a|the|his|her) shield\b", -1),
    (_I.DEFEND, r"\bback away\b|\broll (?:under|aside|away|out of)\b|\bfor cover\b", 2),
    (_I.FLEE, r"\b(?:flee|retreat|escape|withdraw|bolt)\b|\brun(?: away| off| for it)?\b", 2),
    (_I.FLEE, r"\bturn and run\b|\bget (?:me )?(?:away|out)\b", 3),
    (_I.FLEE, r"\b(?:sneak|slip|creep|steal) (?:away|off|out)\b", 4),
    (_I.FLEE, r"\bturn tail\b|\b(?:sprint|dash|scramble|bolt) (?:away|off|into|for|to)\b", 3),
    (_I.FLEE, r"\ba way out\b", 5),
    (_I.FLEE, r"\bback away\b", 2),
    (_I.TALK, r"\b(?:talk|ask|speak|greet|persuade|convince|explain|question|beg|plead)", 2),
    (_I.TALK, r"\b(?:hello|hi|greetings|bribe|flatter|apologi[sz]e|say|chat)\b", 2),
    (_I.TALK, r"\bcall out\b|\breason with\b", 3),
    (_I.TALK, r"\btell\b|\bplease\b|\bsing\b|\bshout\b|\blie\b|\bshow (?:her|him|them)\b", 1),
    (_I.TALK, r"\boffer\b.*\b(?:gold|coin|money|silver|payment)", 2),
    (_I.TALK, r"\b(?:look for|find|seek) (?:anyone|someone|somebody|people|witness)", 6),
    (_I.TALK, r"\b(?:is )?any(?:one|body) (?:there|here|around)\b", 2),
    (_I.TALK, r"\b(?:find|seek out|go to|visit)\b[^.]*\band (?:ask|talk|speak|question)", 3),
    (_I.TALK, r"\bsay nothing\b", -2),
    (_I.THREATEN, r"\b(?:threaten|intimidate)|\bor i'll\b|\bor else\b", 3),
    (_I.THREATEN, r"\bdemand|\bgrab (?:him|her|them)\b|\bby the (?:collar|throat)\b", 2),
    (_I.THREATEN, r"\bbreak your\b|\b(?:slam|shove)\b|\bscream at\b", 2),
    (_I.THREATEN, r"\bcrack my knuckles\b|\bto (?:his|her|their) throat\b", 3),
    (_I.THREATEN, r"\bremind (?:him|her|them) what happened\b|\bor you'll\b|\bunless you\b", 3),
    (_I.LEAVE, r"\b(?:leave|goodbye|farewell|bye)\b|\bhead back\b|\bgo (?:back|home)\b", 2),
    (_I.LEAVE, r"\bgive up\b|\bheard enough\b|\breturn to\b|\bturn back\b|\blet's go\b", 2),
    (_I.LEAVE, r"\benough of this\b|\bforget (?:this|it)\b", 2),
    (_I.LEAVE, r"\bwalk out\b|\babandon\b|\bexcuse myself\b|\bgoodnight\b|\bgood night\b", 3),
    (_I.LEAVE, r"\b(?:going|head(?:ing)?|turn around and head) (?:back|home)\b|\bhopeless\b", 2),
    (_I.LEAVE, r"\bwalk away\b|\b(?:be|go) on my way\b", 3),
    (_I.LEAVE, r"\bi go$", 1),
    (_I.REST, r"\b(?:rest|sleep|nap|camp|bandage|heal|eat)\b|\bcatch (?:my|your) breath\b", 2),
    (_I.REST, r"\bcheck my wounds\b", 3),
    (_I.REST, r"\b(?:drink|rations?|herbs?|potion|healing|bleeding)\b|\bsit down\b", 1),
    (_I.REST, r"\b(?:wrap|bind|tend|dress)\b.*\b(?:arm|leg|wounds?|cuts?|hand)\b", 2),
    (_I.SNEAK, r"\b(?:sneak|stealth|tiptoe|hide|ambush)|\bcreep(?:ing)?\b|\bslip (?:past|by)\b", 2),
    (_I.SNEAK, r"\b(?:quietly|unseen|shadows|circle around|from behind)\b", 1),
    (_I.SNEAK, r"\bwithout (?:\w+ ){0,2}(?:noticing|seeing|being seen|a sound)\b", 3),
    (_I.SNEAK, r"\bslip (?:between|through)\b", 3),
    (_I.CAREFUL, r"\bpress on\b|\bmove on\b|\bkeep going\b", 3),
    (_I.CAREFUL, r"\b(?:continue|proceed|advance|climb)|\bgo (?:on|deeper)\b", 2),
    (_I.CAREFUL, r"\btravel (?:on|onward|to|north|south|east|west)", 2),
    (_I.CAREFUL, r"\b(?:keep )?heading\b|\bcarry on\b|\bcross (?:the|a)\b|\bwalk on\b", 2),
    (_I.CAREFUL, r"\bedge (?:into|along|forward)", 2),
    (_I.CAREFUL, r"\b(?:head|make) (?:for|to|towards)\b|\bmake my way\b", 2),
    (_I.CAREFUL, r"\b(?:carefully|forward|ahead|deeper|scout)\b", 1),
    (_I.SEARCH, r"\b(?:search|explore|investigate|find|track|follow|dig|hunt)|\bopen\b", 2),
    (_I.SEARCH, r"\b(?:decipher|study|inspect|ring|rummage|pry|detect)\b|\bcheck (?:the|for)\b", 2),
    (_I.SEARCH, r"\bcheck around\b", 2),
    (_I.SEARCH, r"\blook (?:for|under|behind|inside|into the|in the)\b|\bpick the lock\b", 3),
    (_I.SEARCH, r"\b(?:examine|read|footprints|tracks|trail)\b", 1),
    (_I.SEARCH, r"\bkneel to (?:examine|look|inspect)\b", 2),
    (_I.LOOK, r"\b(?:look|listen|observe|wait|watch|peer|gaze|scan)|\bcheck around\b", 2),
    (_I.LOOK, r"\blook around\b|\bwhat do i see\b", 3),
    (_I.LOOK, r"\btake in\b|\bsurroundings\b|\blook at\b|\bsay nothing\b|\bsize up\b", 2),
    (_I.LOOK, r"\bcount(?:ing)? how many\b", 2),
]
_COMPILED = [(intent, re.compile(pattern), weight) for intent, pattern, weight in _CUES]
# A question is put to someone: in a talk, or to the foe in a fight (exploring, it is the
# player wondering aloud).
_QUESTION = re.compile(r"^(?:what|where|who|why|how|do you|can you|will you|have you)\b|\?")
_PHASE_CUES: dict[GamePhase, list[tuple[Intent, re.Pattern[str], float]]] = {
    GamePhase.DIALOGUE: [(_I.TALK, _QUESTION, 1)],
    GamePhase.COMBAT: [
        (_I.TALK, _QUESTION, 1),
        (_I.TALK, re.compile(r"\bstop!|\bdon't have to\b"), 1),
    ],
}
_NEGATION = re.compile(r"\b(?:don't|do not|never|not|won't|refuse to)\s+(?:\w+\s+)?$")
# What a reading means in a phase where it cannot be done as such.
_FOLDS: dict[GamePhase, dict[Intent, Intent]] = {
    GamePhase.COMBAT: {
        _I.SEARCH: _I.LOOK,
        _I.SNEAK: _I.ATTACK,
        _I.THREATEN: _I.ATTACK,
        _I.LEAVE: _I.FLEE,
        _I.CAREFUL: _I.ATTACK,
    },
    GamePhase.DIALOGUE: {
        _I.SEARCH: _I.LOOK,
        _I.SNEAK: _I.LOOK,
        _I.FLEE: _I.LEAVE,
        _I.REST: _I.LOOK,
        _I.DEFEND: _I.LOOK,
        _I.CAREFUL: _I.TALK,
    },
    GamePhase.EXPLORATION: {_I.THREATEN: _I.ATTACK, _I.DEFEND: _I.LOOK},
}
# Readings that lead to the same thing in a phase are never worth asking about.
_SAME_THING: dict[GamePhase, set[frozenset[Intent]]] = {
    GamePhase.DIALOGUE: {frozenset({_I.TALK, _I.LOOK}), frozenset({_I.THREATEN, _I.ATTACK})},
}
# When nothing is recognised: what words said to someone are, in each phase.
_UNREAD: dict[GamePhase, Intent] = {GamePhase.DIALOGUE: _I.TALK}
_MAIN_VERB_BONUS = 0.5


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


def _scores(text: str, phase: GamePhase | None) -> dict[Intent, float]:
    scores: dict[Intent, float] = {}
    first: dict[Intent, int] = {}
    for intent, pattern, weight in (
        [*_COMPILED, *_PHASE_CUES.get(phase, [])] if phase else _COMPILED
    ):
        for found in pattern.finditer(text):
            if weight > 0 and _NEGATION.search(text[: found.start()]):
                continue
            scores[intent] = scores.get(intent, 0.0) + weight
            if weight > 0:
                first[intent] = min(first.get(intent, found.start()), found.start())
    if first:
        start = min(first.values())
        leading = [intent for intent, at in first.items() if at == start]
        if len(leading) == 1:  # one reading said first: the main verb, usually
            scores[leading[0]] += _MAIN_VERB_BONUS
    folded: dict[Intent, float] = {}
    for intent, score in scores.items():
        target = _FOLDS.get(phase, {}).get(intent, intent) if phase else intent
        folded[target] = folded.get(target, 0.0) + score
    return {intent: score for intent, score in folded.items() if score > 0}


def read_action(action: str, phase: GamePhase | None = None) -> Reading:
    """What the player means by `action` in `phase`."""
    scores = _scores(words(action), phase)
    if not scores:
        return Reading(_UNREAD.get(phase, _I.OTHER) if phase else _I.OTHER)
    ranked = sorted(scores, key=lambda intent: scores[intent], reverse=True)
    best = ranked[0]
    if len(ranked) > 1:
        second = ranked[1]
        tied = scores[best] - scores[second] < _MAIN_VERB_BONUS
        same = frozenset({best, second}) in _SAME_THING.get(phase, set()) if phase else False
        if tied and not same:
            return Reading(_I.UNSURE, (best, second))
    return Reading(best)


def intent_of(action: str, phase: GamePhase | None = None) -> Intent:
    """The reading of `action`; when unsure, the stronger of the two."""
    reading = read_action(action, phase)
    return reading.alternatives[0] if reading.intent is Intent.UNSURE else reading.intent


def matches_choice(action: str, choices: list[str]) -> str | None:
    text = words(action)
    return next((c for c in choices if words(c) == text), None)
