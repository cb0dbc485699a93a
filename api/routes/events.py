"""`/sessions/{id}/events`: the session's event stream over SSE, resumable by Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from api.deps import (
    Backend,
    BearerCredentials,
    QueryToken,
    ServicesDep,
    SessionIdParam,
    SettingsDep,
    bearer_token,
    check_owner,
)
from api.narration import NarrationRelay
from api.openapi import errors
from api.ratelimit import client_key, rate_limit
from api.streams import StreamRegistry, StreamTicket
from shared.backends import SessionBackend
from shared.errors import BackendUnavailable, InvalidRequest
from shared.ids import event_order, is_event_id
from shared.models import EventName, SessionEvent
from shared.tracing import (
    DELIVERY_FRESH_FOR,
    current_link,
    past_span,
    tracing_enabled,
    turn_context,
)

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


_FINAL = frozenset({EventName.TURN_COMPLETED.value, EventName.TURN_FAILED.value})


async def _traced_delivery(backend: SessionBackend, session_id: str, event: SessionEvent) -> None:
    """The end of a turn sent on a stream, as a span in the turn's own trace (from the
    event's writing to its hand-over to the connection), linked to the stream's request
    span."""
    written = int(event.id.split("-", 1)[0]) / 1000
    if time.time() - written > DELIVERY_FRESH_FOR:
        return  # a replay of an old end (a stream resumed from 0): not a delivery to trace
    record = await backend.get_turn(session_id, str(event.data.get("turn_id", "")))
    if record is None or not record.traceparent:
        return
    link = current_link()
    with turn_context(record.traceparent):
        past_span("turn.delivery", written, time.time(), links=link, delivery="sse")


async def _stream(
    backend: SessionBackend,
    session_id: str,
    cursor: str,
    poll: float,
    ticket: StreamTicket,
    streams: StreamRegistry,
    traced: bool = False,
    resumed: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    relay = NarrationRelay()
    try:
        if resumed:
            await _replay_heard(backend, session_id, cursor, relay)
        while True:
            events = await _read_unless_replaced(backend, session_id, cursor, poll, ticket)
            if events is None:
                # A newer stream of this session took this one's place (see api.streams).
                yield ServerSentEvent(comment="replaced by a newer stream of this session")
                return
            for event in events:
                cursor = event.id
                for piece in relay.missing(event):
                    # No id: not a point to resume from (the turn's end, next, is one).
                    yield ServerSentEvent(
                        data=json.dumps(piece, separators=(",", ":")),
                        event=EventName.NARRATION_DELTA.value,
                    )
                if traced and event.event in _FINAL:
                    # Traced as it is handed over, not after: a client that stops reading at
                    # a turn's end cancels this generator at the yield. A trace is worth
                    # less than the stream: a failed lookup ends neither.
                    with contextlib.suppress(BackendUnavailable):
                        await _traced_delivery(backend, session_id, event)
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
    finally:
        streams.release(ticket)


async def _replay_heard(
    backend: SessionBackend, session_id: str, cursor: str, relay: NarrationRelay
) -> None:
    """Tell the relay of a stream resumed at `cursor` what its client heard: the retained
    events up to the cursor. A turn it was hearing is then completed like a live stream's,
    if its commit compacts its last deltas before the stream reads them. (One page read in
    the usual case; nothing is sent.)"""
    until = event_order(cursor)
    after = "0"
    while True:
        heard = await backend.read_events(session_id, after)
        for event in heard:
            if event_order(event.id) > until:
                return
            relay.missing(event)
            if event.id == cursor:
                return
        if not heard:
            return
        after = heard[-1].id


async def _read_unless_replaced(
    backend: SessionBackend, session_id: str, cursor: str, poll: float, ticket: StreamTicket
) -> list[SessionEvent] | None:
    """The next events (a blocking read of up to `poll` seconds), or None once the stream
    has been replaced: it must not go on holding a reader until its read times out."""
    if ticket.replaced.is_set():
        return None
    read = asyncio.ensure_future(backend.read_events(session_id, cursor, timeout=poll))
    replaced = asyncio.ensure_future(ticket.replaced.wait())
    try:
        await asyncio.wait({read, replaced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        replaced.cancel()
        if not read.done():
            read.cancel()
    if ticket.replaced.is_set():
        with contextlib.suppress(asyncio.CancelledError, BackendUnavailable):
            await read
        return None
    return read.result()


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
    request: Request,
    services: ServicesDep,
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
    ticket = services.streams.open(session_id, client_key(request))
    return EventSourceResponse(
        _stream(
            backend,
            session_id,
            cursor,
            settings.sse_ping_interval,
            ticket,
            services.streams,
            traced=tracing_enabled(settings),
            resumed=cursor != "0" and last_event_id is not None,
        ),
        ping=settings.sse_ping_interval,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Also when the body never starts (a client gone at once): the ticket is returned.
        background=BackgroundTask(services.streams.release, ticket),
    )
