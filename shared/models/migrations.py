"""Stored game states from older schema versions, brought up to the current one on read.

A state carries `schema_version`. When a change to `GameState` would make older stored
states invalid or wrong, raise `SCHEMA_VERSION` and add the function that turns a document of
the version before into one of the new version: a small pure function over the JSON document,
with a test. Reading applies them in order. A document from a newer schema than this code
knows (a newer service wrote it, say during a rolling upgrade) is refused with
`SchemaTooNew`, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import SchemaTooNew
from shared.models.state import SCHEMA_VERSION

__all__ = ["MIGRATIONS", "Document", "migrate_state"]

Document = dict[str, Any]


def _v1_to_v2(document: Document) -> Document:
    # Version 2 added the creation interview and the epilogue phase. A version-1 state was
    # either made in one turn or is still before its first; its finished adventures told
    # their ending on the closing turn itself, so they stay finished.
    return {**document, "character_draft": None}


_FIRST_WORDS = {"defeat": "fight", "ask": "talk", "question": "talk", "learn": "talk"}


def _objective_v3(quest_id: str, text: str, location: str) -> Document:
    """A version-2 objective (its text only) as the version-3 model: from the quest's
    template when the content still has it, else read from its words."""
    from shared.game.content import QUESTS  # data only; imported late to avoid a cycle

    template = QUESTS.get(quest_id)
    known = next((o for o in template.objectives if o.text == text), None) if template else None
    if known is not None:
        return known.model_dump(mode="json")
    first = text.split(" ", 1)[0].lower()
    kind = _FIRST_WORDS.get(first, "explore")
    subject = text.split(" the ", 1)[-1] if kind == "fight" else text
    return {"text": text, "kind": kind, "location": location, "subject": subject[:60]}


def _quest_v3(quest: Document | None, location: str) -> Document | None:
    if quest is None:
        return None
    objectives = [
        _objective_v3(quest["quest_id"], text, location) if isinstance(text, str) else text
        for text in quest.get("objectives", [])
    ]
    return {**quest, "objectives": objectives}


def _v2_to_v3(document: Document) -> Document:
    # Version 3: quests carry whole objectives, moments have a kind and a significance, and
    # a foe's damage is dice notation.
    location = str(document.get("location") or "the crossroads inn")
    migrated = {**document}
    migrated["active_quest"] = _quest_v3(document.get("active_quest"), location)
    for field in ("quest_options", "completed_quests"):
        migrated[field] = [_quest_v3(q, location) for q in document.get(field, [])]
    migrated["adventure_moments"] = [
        {"kind": "moment", "text": text, "significance": 2} if isinstance(text, str) else text
        for text in document.get("adventure_moments", [])
    ]
    combat = document.get("combat_state")
    if combat is not None and isinstance(combat.get("enemy_damage"), int):
        migrated["combat_state"] = {**combat, "enemy_damage": f"1d{combat['enemy_damage']}"}
    return migrated


# MIGRATIONS[n] turns a version-n document into a version-(n+1) one.
MIGRATIONS: Mapping[int, Callable[[Document], Document]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate_state(
    document: Document,
    *,
    current: int = SCHEMA_VERSION,
    migrations: Mapping[int, Callable[[Document], Document]] = MIGRATIONS,
) -> Document:
    """`document` at schema `current`. Raises `SchemaTooNew` for a newer document and
    `ValueError` when a step is missing (a bug: every version below `current` needs one)."""
    version = int(document.get("schema_version", 1))
    if version > current:
        raise SchemaTooNew(str(document.get("session_id", "?")), version, current)
    while version < current:
        step = migrations.get(version)
        if step is None:
            raise ValueError(f"no migration from state schema {version} to {version + 1}")
        document = step(dict(document))
        version += 1
        document["schema_version"] = version
    return document
