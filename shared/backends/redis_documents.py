"""How the Redis backend lays out its documents: states and turn records packed (see
`codec`); a completed record and its turn.completed event carry their narrative.

Until version 0.1 of this layout a completed record and its event left the narrative out
when the state's history held it, and readers put it back from there, which made every read
of a finished turn (the long-poll, the stream) read and decode the whole state too, and tied
TURN_RECORDS_KEPT and EVENTS_MAXLEN to HISTORY_LIMIT. Such documents, written before an
upgrade, are still read the old way (`narrative_elsewhere`) until they age out.
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
    "menu_of",
    "narrative_elsewhere",
    "record_from",
    "result_document",
    "split_record",
    "state_from",
]

_log = logging.getLogger(__name__)


def event_data(record: TurnRecord, **extra: Any) -> str:
    return json.dumps({"turn_id": record.turn_id, **extra}, separators=(",", ":"))


def state_from(stored: str | bytes) -> GameState:
    """A stored state at the current schema (older ones migrated, newer ones refused)."""
    return GameState.model_validate(migrate_state(json.loads(unpack(stored))))


def menu_of(state: GameState) -> str:
    """What a new turn is checked against in the store (ACCEPT_OWNED): whether the adventure
    has ended, and what each choice means."""
    menu = {"ended": state.adventure_completed, "actions": state.choice_meanings}
    return json.dumps(menu, ensure_ascii=False, separators=(",", ":"))


def split_record(record: TurnRecord) -> tuple[str, str]:
    """A record as plain JSON in two parts, to be joined around its action (a JSON string) by
    a script that only then knows it: the action of a turn by choice."""
    document = _record_document(record)
    del document["action"]
    rest = json.dumps(document, separators=(",", ":"))  # never empty: turn_id, status, ...
    return '{"action":', "," + rest[1:]


def result_document(record: TurnRecord) -> dict[str, Any] | None:
    return None if record.result is None else record.result.model_dump(mode="json")


def _record_document(record: TurnRecord) -> dict[str, Any]:
    # Only what the key does not already say, and no nulls: every optional field of a
    # record defaults to None.
    document = record.model_dump(mode="json", exclude={"session_id", "result"}, exclude_none=True)
    result = result_document(record)
    if result is not None:
        document["result"] = {k: v for k, v in result.items() if v is not None}
    return document


def dump_record(record: TurnRecord, codec: Codec) -> bytes:
    return codec.pack(RECORD, json.dumps(_record_document(record), separators=(",", ":")))


def narrative_elsewhere(document: dict[str, Any]) -> bool:
    """A document written before finished turns carried their narrative."""
    result = document.get("result")
    return isinstance(result, dict) and "narrative" not in result


def fill_narrative(result: dict[str, Any], turn_id: str, state: str | bytes | None) -> None:
    """Put back a narrative left out of a stored result, from the state's history."""
    history = json.loads(unpack(state))["conversation_history"] if state else []
    told = next((h for h in history if h["turn_id"] == turn_id), None)
    if told is None:
        # The old layout's bounds kept the history longer than the records and events.
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
