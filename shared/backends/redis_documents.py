"""How the Redis backend lays out its documents: states and turn records packed (see
`codec`), and a completed turn's narrative kept once, in the state's history.

A completed record and its turn.completed event are stored without the narrative when the
state committed with them holds it; readers put it back from the history. The turn records
and final events kept never outlive the history (Settings checks the bounds).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.backends.codec import RECORD, Codec, unpack
from shared.models import GameState, TurnRecord
from shared.models.migrations import migrate_state

__all__ = [
    "dump_record",
    "event_data",
    "fill_narrative",
    "narrative_elsewhere",
    "record_from",
    "result_document",
    "state_from",
]

_log = logging.getLogger(__name__)


def event_data(record: TurnRecord, **extra: Any) -> str:
    return json.dumps({"turn_id": record.turn_id, **extra}, separators=(",", ":"))


def state_from(stored: str | bytes) -> GameState:
    """A stored state at the current schema (older ones migrated, newer ones refused)."""
    return GameState.model_validate(migrate_state(json.loads(unpack(stored))))


def told_in_history(record: TurnRecord, state: GameState | None) -> bool:
    """Whether `state`'s history holds the narrative of `record`'s result. The turn records
    and final events kept never outlive the history (see Settings), so such a narrative is
    stored there only."""
    if record.result is None or state is None:
        return False
    told = next((h for h in state.conversation_history if h.turn_id == record.turn_id), None)
    return told is not None and told.narrative == record.result.narrative


def result_document(record: TurnRecord, state: GameState | None) -> dict[str, Any] | None:
    if record.result is None:
        return None
    document = record.result.model_dump(mode="json")
    if told_in_history(record, state):
        del document["narrative"]
    return document


def dump_record(record: TurnRecord, codec: Codec, state: GameState | None = None) -> bytes:
    # Only what the key does not already say, and no nulls: every optional field of a
    # record defaults to None.
    document = record.model_dump(mode="json", exclude={"session_id", "result"}, exclude_none=True)
    result = result_document(record, state)
    if result is not None:
        document["result"] = {k: v for k, v in result.items() if v is not None}
    return codec.pack(RECORD, json.dumps(document, separators=(",", ":")))


def narrative_elsewhere(document: dict[str, Any]) -> bool:
    result = document.get("result")
    return isinstance(result, dict) and "narrative" not in result


def fill_narrative(result: dict[str, Any], turn_id: str, state: str | bytes | None) -> None:
    """Put back a narrative left out of a stored result, from the state's history."""
    history = json.loads(unpack(state))["conversation_history"] if state else []
    told = next((h for h in history if h["turn_id"] == turn_id), None)
    if told is None:
        # Only a hand-edited state or settings outside their checked bounds get here.
        _log.warning("narrative of turn %s is no longer stored", turn_id)
    result["narrative"] = told["narrative"] if told else ""


def record_from(
    session_id: str, stored: dict[str, Any] | str, state: str | bytes | None
) -> TurnRecord:
    """A stored record, with what was left out of it put back."""
    document: dict[str, Any] = json.loads(unpack(stored)) if isinstance(stored, str) else stored
    document.setdefault("session_id", session_id)
    if narrative_elsewhere(document):
        fill_narrative(document["result"], document["turn_id"], state)
    return TurnRecord.model_validate(document)
