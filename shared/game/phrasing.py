"""Saying the same thing differently: a phrase picked from its variants, fixed by the
session's seed and the turn (replaying a game tells it the same way), and never one the story
told in its last `RECENT_TURNS` turns while another variant is left.

Pure: it reads the state's own history, nothing else, and draws nothing from the turn's dice,
so the wording never changes what the dice decide."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

from shared.game.content import CLASSES
from shared.models import GameState

__all__ = ["RECENT_TURNS", "pick", "recent_text", "say", "scene_fields"]

RECENT_TURNS = 9
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def recent_text(state: GameState, turns: int = RECENT_TURNS) -> str:
    return "\n".join(entry.narrative for entry in state.conversation_history[-turns:])


def _told(text: str, recent: str) -> bool:
    return any(part and part in recent for part in _SENTENCE_END.split(text.strip()))


def pick(state: GameState, salt: str, variants: Sequence[str], **fields: object) -> str:
    """One of `variants` (format strings over `fields`), in an order fixed by the seed, the
    turn and `salt`: the first not told recently, else the first."""
    rendered = [variant.format(**fields) for variant in variants]
    start = zlib.crc32(f"{state.seed}:{state.version}:{salt}".encode()) % len(rendered)
    ordered = rendered[start:] + rendered[:start]
    recent = recent_text(state)
    return next((text for text in ordered if not _told(text, recent)), ordered[0])


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def scene_fields(state: GameState) -> dict[str, str]:
    """What a phrase may name: the hero, their craft and gear, the place, the quest, the foe."""
    sheet = state.character_sheet
    template = CLASSES.get(sheet.character_class) if sheet else None
    foe = state.combat_state.enemy_name if state.combat_state else "foe"
    carried = sheet.equipment if sheet else []
    gear = next((item for item in carried if template and item != template.weapon), "pack")
    return {
        "name": sheet.name if sheet else "stranger",
        "craft": sheet.character_class if sheet else "wanderer",
        "race": sheet.race if sheet else "traveller",
        "weapon": template.weapon if template else "blade",
        "gear": gear,
        "place": state.location,
        "place_cap": _capital(state.location),
        "quest": state.active_quest.title if state.active_quest else "the troubles on the road",
        "foe": foe,
    }


def say(state: GameState, key: str, variants: Sequence[str], **fields: object) -> str:
    """`pick` with the scene's fields (`fields` add to or override them); "{x_cap}" is
    "{x}" capitalised for any field given."""
    known: dict[str, object] = {**scene_fields(state), **fields}
    for name, value in list(known.items()):
        if isinstance(value, str) and f"{name}_cap" not in known:
            known[f"{name}_cap"] = _capital(value)
    return pick(state, key, variants, **known)
