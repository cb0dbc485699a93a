"""Content safety in the rules: the built-in check of what a player typed, and the redirect a
flagged action becomes. Pure: no I/O (an external moderation endpoint is
`shared.game.moderation`).

As in the original Pocket Portals, unsafe input is not an error: the turn happens, the rules
apply no action (no clock tick, no dice, no moment), and the narrator steers the story gently
back, without repeating or describing what was typed. Fantasy violence — fighting monsters,
threatening a bandit — is the game and is not flagged; the rule set aims at what has no place
in any tale told here: self-harm, sexual content, harm to children, hatred of real groups, and
instructions for real-world harm.
"""

from __future__ import annotations

import re

from shared.game.rules.outcome import Outcome, Resolution
from shared.models import GameState

__all__ = ["REDIRECTED", "redirect", "unsafe_categories"]

REDIRECTED = "redirected"

_GROUPS = (
    r"(?:jews?|muslims?|christians?|hindus?|sikhs?|black (?:people|folks?)|white people|asians?"
    r"|arabs?|gays?|lesbians?|trans(?:gender)? people|immigrants?|refugees?|women|mexicans?)"
)
_RULES: dict[str, re.Pattern[str]] = {
    "self-harm": re.compile(
        r"\b(?:kill(?:ing)? my ?self|suicid\w*|self[- ]?harm\w*|end my (?:own )?life"
        r"|cut(?:ting)? my (?:wrists?|arms?)|want to die)\b"
    ),
    "sexual/minors": re.compile(
        r"\b(?:child|children|kids?|minors?|underage|little (?:girl|boy)|teen(?:ager)?s?)\b"
        r"[^.!?]{0,40}\b(?:sex\w*|nude|naked|porn\w*|molest\w*|grope\w*|rape\w*)\b"
        r"|\b(?:sex\w*|nude|naked|porn\w*|molest\w*|rape\w*)\b[^.!?]{0,40}"
        r"\b(?:child|children|kids?|minors?|underage|little (?:girl|boy))\b"
    ),
    "sexual": re.compile(
        r"\b(?:have sex|having sex|sex with|rape\w*|porn\w*|masturbat\w*|orgasm\w*|blowjob"
        r"|genitals?|strip (?:naked|nude)|get (?:naked|nude)|fuck(?:ing)? (?:her|him|them))\b"
    ),
    "hate": re.compile(
        rf"\b(?:kill|exterminate|gas|burn|lynch|eradicate|hate) (?:all )?(?:the )?{_GROUPS}\b"
        rf"|\b{_GROUPS} (?:are|r) (?:vermin|subhuman|animals|filth)\b|\bethnic cleansing\b"
        r"|\bheil hitler\b"
    ),
    "illicit/violent": re.compile(
        r"\b(?:how (?:do i|to|can i)|teach me to|steps to|recipe for|instructions? (?:for|to))"
        r"[^.!?]{0,30}\b(?:make|build|cook|synthesi[sz]e|buy)\b[^.!?]{0,30}"
        r"\b(?:bombs?|explosives?|pipe bombs?|meth\w*|nerve (?:agent|gas)|ricin|anthrax"
        r"|untraceable guns?|ghost guns?)\b"
    ),
}


def unsafe_categories(text: str) -> tuple[str, ...]:
    """The categories of the built-in rule set that `text` falls in (none: it is fine)."""
    lowered = " ".join(text.lower().split())
    return tuple(category for category, rule in _RULES.items() if rule.search(lowered))


def redirect(state: GameState) -> Resolution:
    """A flagged action's turn: nothing the player typed happens; the story turns back."""
    return Resolution(
        state,
        Outcome(
            REDIRECTED,
            [
                "those words have no place in this tale, and nothing comes of them",
                "the road and your quest still wait for you",
            ],
        ),
    )
