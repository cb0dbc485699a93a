"""`/sessions/{id}/events`: the session's event stream over SSE, resumable by Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import (
    Backend,
    BearerCredentials,
    QueryToken,
    SessionIdParam,
    SettingsDep,
    bearer_token,
    check_owner,
)
from api.openapi import errors
from api.ratelimit import rate_limit
from shared.backends import SessionBackend
from shared.errors import BackendUnavailable, InvalidRequest
from shared.ids import is_event_id

__all__ = ["router"]

router = APIRouter(
    prefix="/sessions/{session_id}/events",
    tags=["events"],
    dependencies=[Depends(rate_limit)],
    responses=errors(401, 404, 422, 429, 503),
)


# When the store fails mid-stream, the browser is told to come back after this long; it
# resumes from the last event id it saw, so nothing is lost.
_RECONNECT_MS = 2000


async def _stream(
    backend: SessionBackend, session_id: str, cursor: str, poll: float
) -> AsyncIterator[ServerSentEvent]:
    try:
        while True:
            events = await backend.read_events(session_id, cursor, timeout=poll)
            for event in events:
                cursor = event.id
                yield ServerSentEvent(
                    data=json.dumps(event.data, separators=(",", ":")),
                    event=event.event,
                    id=event.id,
                )
            if not events and not await backend.exists(session_id):
                return  # deleted or expired: end the stream instead of idling forever
    except BackendUnavailable:
        # A whole last message, then the end of the body: never an exception inside the
        # generator, which would cut the response mid-chunk.
        yield ServerSentEvent(comment="session store unavailable", retry=_RECONNECT_MS)


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
    credentials: BearerCredentials,
    token: QueryToken,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    resume_from: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="Where to resume when the Last-Event-ID header cannot be set (a page "
            "opening a new EventSource after a reload); the header wins when both are given.",
        ),
    ] = None,
) -> EventSourceResponse:
    player_token = token if token and credentials is None else bearer_token(credentials)
    await check_owner(backend, session_id, player_token)
    # EventSource sends the header itself when it reconnects; a fresh one (after a reload)
    # can only say where it left off in the URL.
    last_event_id = last_event_id if last_event_id is not None else resume_from
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
