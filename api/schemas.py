"""Request and response bodies of the HTTP contract (docs/api.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from shared.models import GameStateView, TurnError, TurnResult, TurnStatus

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "NewSession",
    "SessionCreated",
    "SessionOut",
    "TurnAccepted",
    "TurnLinks",
    "TurnOut",
    "TurnRequest",
]

MAX_ACTION_LENGTH = 500
# C0 controls but newline, DEL, C1 controls; bidirectional overrides and isolates (text that
# reads differently from what it says) and tag characters (invisible text).
_FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]"
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewSession(_Request):
    # Examples show in /docs and in the error that a malformed body gets.
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"seed": 42}]})

    seed: StrictInt | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Makes the offline narrator's dice reproducible.",
    )


class TurnRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"choice_index": 1}, {"action": "I look around"}]}
    )

    action: str | None = Field(default=None, description="1-500 characters after trimming.")
    choice_index: StrictInt | None = Field(
        default=None, ge=1, description="1-based index into the session's current_choices."
    )

    @field_validator("action")
    @classmethod
    def _check_action(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not 1 <= len(value) <= MAX_ACTION_LENGTH:
            raise ValueError(f"action must be 1 to {MAX_ACTION_LENGTH} characters after trimming")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate ("\\ud800" in JSON) is no text at all: it could never be stored.
            raise ValueError("action must be Unicode text (it has a lone surrogate)") from None
        if _FORBIDDEN.search(value):
            raise ValueError(
                "action must not contain control characters other than newline, "
                "bidirectional overrides or tag characters"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.action is None) == (self.choice_index is None):
            raise ValueError("give exactly one of action and choice_index")
        return self


class SessionCreated(BaseModel):
    session_id: str
    player_token: str
    state: GameStateView


class SessionOut(BaseModel):
    session_id: str
    version: int
    state: GameStateView


class TurnLinks(BaseModel):
    self: str
    events: str


class TurnAccepted(BaseModel):
    turn_id: str
    status: TurnStatus
    links: TurnLinks


class TurnOut(BaseModel):
    turn_id: str
    status: TurnStatus
    result: TurnResult | None
    error: TurnError | None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Annotated[Any, Field(default=None)] = None


class ErrorResponse(BaseModel):
    error: ErrorBody
