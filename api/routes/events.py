"""`/sessions/{id}/events`: the session's event stream over SSE, resumable by Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import Backend, SessionIdParam, SettingsDep, bearer_token
from shared.backends import SessionBackend
from shared.errors import InvalidRequest, SessionNotFound
from shared.ids import is_event_id, token_matches

__all__ = ["router"]

router = APIRouter(prefix="/sessions/{session_id}/events", tags=["events"])


async def _stream(
    backend: SessionBackend, session_id: str, cursor: str, poll: float
) -> AsyncIterator[ServerSentEvent]:
    while True:
        events = await backend.read_events(session_id, cursor, timeout=poll)
        for event in events:
            cursor = event.id
            yield ServerSentEvent(
                data=json.dumps(event.data, separators=(",", ":")), event=event.event, id=event.id
            )
        if not events and not await backend.exists(session_id):
            return  # deleted or expired: end the stream instead of idling forever


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A stream of turn.* and narration.delta events.",
        }
    },
)
async def stream_events(
    session_id: SessionIdParam,
    backend: Backend,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    token: Annotated[
        str | None, Query(max_length=256, description="For EventSource, which cannot set headers.")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    player_token = token if token and not authorization else bearer_token(authorization)
    owner = await backend.owner_hash(session_id)
    if owner is None or not token_matches(player_token, owner):
        raise SessionNotFound(session_id)
    if last_event_id is not None:
        last_event_id = last_event_id.strip()
        if not is_event_id(last_event_id):
            raise InvalidRequest(
                "Last-Event-ID must be an event id from this stream, or 0.", field="Last-Event-ID"
            )
        cursor = last_event_id
    else:
        cursor = await backend.last_event_id(session_id)
    return EventSourceResponse(
        _stream(backend, session_id, cursor, settings.sse_ping_interval),
        ping=settings.sse_ping_interval,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
