"""How routes describe their error responses in the OpenAPI document, truthfully: each route
lists the statuses it can answer with, all in the one error format."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorResponse

__all__ = ["AUTHORIZED", "PUBLIC", "errors"]

_DESCRIPTIONS = {
    401: "Missing or malformed player token (unauthorized).",
    404: "Unknown or expired session, or a token that is not its owner's (session_not_found); "
    "or no such turn (turn_not_found).",
    409: "The adventure has ended (adventure_completed).",
    413: "The body is larger than allowed (payload_too_large).",
    422: "Invalid request (invalid_request), or an Idempotency-Key reused with another body "
    "(idempotency_key_reused).",
    429: "Too many pending turns for the session (too_many_pending_turns), too many turns in "
    "flight from this client (too_many_turns_in_flight) or too many requests from this client "
    "(rate_limited); see Retry-After.",
    503: "The session store or the task queue is unavailable (backend_unavailable), or the "
    "service is overloaded (overloaded); see Retry-After.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


PUBLIC = errors(413, 422, 429, 503)
AUTHORIZED = errors(401, 404, 413, 422, 429, 503)
