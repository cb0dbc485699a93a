"""Events on a session's stream, as SSE delivers them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["EventName", "SessionEvent"]


class EventName(StrEnum):
    TURN_QUEUED = "turn.queued"
    TURN_STARTED = "turn.started"
    NARRATION_DELTA = "narration.delta"
    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"
    TURN_RESTARTED = "turn.restarted"


class SessionEvent(BaseModel):
    """`id` is the position in the session's stream (a Redis Stream entry id, `<ms>-<seq>`),
    so ids compare in order and a client can resume after the last one it saw."""

    model_config = ConfigDict(frozen=True)

    id: str
    event: str
    data: dict[str, Any]

    @property
    def turn_id(self) -> str | None:
        value = self.data.get("turn_id")
        return value if isinstance(value, str) else None
