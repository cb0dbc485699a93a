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


# MIGRATIONS[n] turns a version-n document into a version-(n+1) one.
MIGRATIONS: Mapping[int, Callable[[Document], Document]] = {1: _v1_to_v2}


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
