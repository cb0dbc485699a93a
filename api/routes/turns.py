"""`/sessions/{id}/turns`: submit a turn, poll (or long-poll) its status."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from api.deps import (
    BearerCredentials,
    PlayerToken,
    ServicesDep,
    SessionIdParam,
    TurnIdParam,
    bearer_token,
)
from api.openapi import AUTHORIZED, errors
from api.ratelimit import client_key, rate_limit
from api.schemas import TurnAccepted, TurnLinks, TurnOut, TurnRequest
from api.shutdown import server_stopping
from shared.backends import Admission, IdempotencyClaim, NewTurn, SessionBackend
from shared.backends.keys import client_digest
from shared.errors import (
    AdventureCompleted,
    BackendUnavailable,
    InvalidRequest,
    Overloaded,
    PortalsError,
    RequestError,
    SessionNotFound,
    TooManyTurnsInFlight,
    TurnNotFound,
)
from shared.ids import new_turn_id, token_hash, token_matches
from shared.logs import CORRELATION_ID
from shared.metrics import TURNS_ACCEPTED, TURNS_DEDUPLICATED, TURNS_FAILED
from shared.models import (
    EventName,
    SessionEvent,
    TurnError,
    TurnRecord,
    TurnResult,
    TurnStatus,
)
from shared.tracing import (
    DELIVERY_FRESH_FOR,
    current_link,
    current_traceparent,
    past_span,
    turn_context,
)

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/sessions/{session_id}/turns",
    tags=["turns"],
    dependencies=[Depends(rate_limit)],
    responses=AUTHORIZED,
)

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_FINISHED_EVENTS = {EventName.TURN_COMPLETED.value, EventName.TURN_FAILED.value}


def _claim(key: str | None, body: TurnRequest) -> IdempotencyClaim | None:
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters.", field="Idempotency-Key"
        )
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    return IdempotencyClaim(key=key, fingerprint=fingerprint)


def _accepted(session_id: str, record: TurnRecord) -> TurnAccepted:
    base = f"/sessions/{session_id}"
    return TurnAccepted(
        turn_id=record.turn_id,
        status=record.status,
        links=TurnLinks(self=f"{base}/turns/{record.turn_id}", events=f"{base}/events"),
    )


@router.post("", status_code=202, response_model=TurnAccepted, responses=errors(409))
async def submit_turn(
    request: Request,
    session_id: SessionIdParam,
    token: PlayerToken,
    body: TurnRequest,
    services: ServicesDep,  # one dependency, not three: the hot path pays for each
    idempotency_key: Annotated[str | None, Header()] = None,
) -> TurnAccepted:
    backend, queue, settings = services.backend, services.enqueuer, services.settings
    turn = NewTurn(
        record=TurnRecord(
            turn_id=new_turn_id(),
            session_id=session_id,
            action=body.action or "",
            choice_index=body.choice_index,
            accepted_at=time.time(),
            correlation_id=CORRELATION_ID.get(),
            client=client_digest(client_key(request)),
            traceparent=current_traceparent(),
        ),
        owner_hash=token_hash(token),
        choice_index=body.choice_index,
        # Checked as the body is, before anything is read: the same answer whoever asks.
        idempotency=_claim(idempotency_key, body),
        max_pending=settings.max_pending_turns,
        ticket_ttl=settings.admission_ticket_ttl,
        max_total=settings.max_queue_depth,
        max_per_client=settings.max_turns_in_flight_per_client,
    )
    record = turn.record
    # Marked pending as it is recorded: if this process dies before the task is published,
    # the workers' sweeper still finds the session and queues it. Traced by the store's span
    # for its script; the publish, by Celery's.
    try:
        stored = await backend.accept_owned_turn(turn)
    except _NOTHING_WRITTEN:
        raise
    except BaseException:
        # Lost on the way back, perhaps: a ticket taken is given back (or lapses by itself).
        await _give_back(backend, record.turn_id, record.client)
        raise
    if stored is None:
        stored = await _accept_in_two_steps(backend, turn)
    duplicate = stored.turn_id != record.turn_id
    if stored.status is TurnStatus.QUEUED:
        try:
            await queue.enqueue(session_id)
        except BackendUnavailable:
            stored = await _withdraw(backend, stored, turn.idempotency)
    (TURNS_DEDUPLICATED if duplicate else TURNS_ACCEPTED).inc()
    return _accepted(session_id, stored)


# A turn refused for what is wrong with it, or for the service's load, took no ticket.
_NOTHING_WRITTEN = (RequestError, Overloaded)
# Refusals a retry of a turn accepted earlier is answered past (with that turn).
_SUPERSEDED_BY_A_RETRY = (Overloaded, TooManyTurnsInFlight, AdventureCompleted, InvalidRequest)


async def _accept_in_two_steps(backend: SessionBackend, turn: NewTurn) -> TurnRecord:
    """Where the store cannot take a new turn in one step: the owner's state and the turn's
    admission ticket in one round trip (no ticket for anyone else's token), then the turn
    itself; a ticket is given back wherever the turn goes no further."""
    record = turn.record
    admitted = await backend.admit_owned_turn(
        record.session_id,
        turn.owner_hash,
        record.turn_id,
        record.client or "",
        now=record.accepted_at,
        ttl=turn.ticket_ttl,
        max_total=turn.max_total,
        max_per_client=turn.max_per_client,
    )
    if admitted is None:
        raise SessionNotFound(record.session_id)  # a wrong token looks like a missing session
    state, admission = admitted
    try:
        record = turn.checked_against(state)
        admission.refuse(turn.max_per_client)
    except Exception as refused:
        if admission is Admission.ADMITTED:
            await _give_back(backend, record.turn_id, record.client)
        # A retry of a turn accepted earlier gets that turn back, even if a new turn would now
        # be refused: the epilogue it led to, or its choices, may have changed since.
        if turn.idempotency is None or not isinstance(refused, _SUPERSEDED_BY_A_RETRY):
            raise
        earlier = await backend.idempotent_turn(record.session_id, turn.idempotency)
        if earlier is None:
            raise
        return earlier
    try:
        stored = await backend.accept_turn(
            record, max_pending=turn.max_pending, idempotency=turn.idempotency, mark_pending=True
        )
    except BaseException:
        await _give_back(backend, record.turn_id, record.client)
        raise
    if stored.turn_id != record.turn_id:
        await _give_back(backend, record.turn_id, record.client)  # the earlier turn has its own
    return stored


async def _give_back(backend: SessionBackend, turn_id: str, client: str | None) -> None:
    """Release the ticket of a turn that will not run; if the store cannot take that now,
    the ticket lapses by itself (ADMISSION_TICKET_TTL)."""
    try:
        await backend.release_admission(turn_id, client)
    except PortalsError:
        logger.warning("admission ticket not released; it lapses by itself")


async def _withdraw(
    backend: SessionBackend, stored: TurnRecord, claim: IdempotencyClaim | None
) -> TurnRecord:
    """The broker refused the task: take the turn back so the player can simply resend it."""
    error = TurnError(
        code="queue_unavailable", message="The turn could not be queued; please send it again."
    )
    try:
        withdrawn = await backend.withdraw_turn(
            stored.session_id, stored.turn_id, error, idempotency_key=claim.key if claim else None
        )
    except BackendUnavailable:
        # Recorded but neither queued nor withdrawn: it is pending, and the sweeper queues it
        # once the broker is back. Telling the player 503 now would invite a duplicate.
        logger.warning("turn recorded but not queued; the sweeper will queue it")
        return stored
    if withdrawn:
        TURNS_FAILED.labels(error.code).inc()
        await _give_back(backend, stored.turn_id, stored.client)
        raise BackendUnavailable("task queue")
    # It left the inbox already: a worker draining this session applied it.
    return await backend.get_turn(stored.session_id, stored.turn_id) or stored


async def _wait_for_finish(
    backend: SessionBackend, session_id: str, turn_id: str, token: str, wait: float
) -> TurnOut:
    asked = time.time()
    # The stream position is taken before the record is read, so a completion that lands
    # in between is still seen as an event; the owner check rides in the same round trip.
    cursor, record = await backend.turn_after_cursor(
        session_id, turn_id, lambda owner: token_matches(token, owner)
    )
    if record is None:
        raise TurnNotFound(session_id, turn_id)
    answer = await _poll(backend, session_id, turn_id, record, cursor, wait)
    # Traced once the turn is told: asked for again long after, it is not its delivery.
    fresh = not record.status.finished or (record.finished_at or 0.0) > asked - DELIVERY_FRESH_FOR
    if answer.status.finished and record.traceparent and fresh:
        # The answer's delivery, in the turn's own trace (linked to this request's).
        link = current_link()
        with turn_context(record.traceparent):
            past_span("turn.delivery", asked, time.time(), links=link, delivery="long_poll")
    return answer


async def _poll(
    backend: SessionBackend,
    session_id: str,
    turn_id: str,
    record: TurnRecord,
    cursor: str,
    wait: float,
) -> TurnOut:
    deadline = time.monotonic() + wait
    status = record.status
    while not status.finished:
        remaining = deadline - time.monotonic()
        # A stopping gateway answers now: waited out, the poll would hold the process past
        # its grace (api.shutdown). One read lasts at most the store's max_block.
        if remaining <= 0 or server_stopping():
            break
        events = await backend.read_events(session_id, cursor, timeout=remaining)
        if events:
            cursor = events[-1].id
            for event in events:
                if event.turn_id != turn_id:
                    continue
                if event.event in _FINISHED_EVENTS:
                    # The final event says all the answer needs: no second read of the record.
                    return _finished(turn_id, event)
                if event.event == EventName.TURN_STARTED.value:
                    status = TurnStatus.RUNNING
        elif not await backend.exists(session_id):
            break
        await asyncio.sleep(0)
    if status is not record.status:
        return TurnOut(turn_id=turn_id, status=status, result=None, error=None)
    return TurnOut(
        turn_id=record.turn_id, status=record.status, result=record.result, error=record.error
    )


def _finished(turn_id: str, event: SessionEvent) -> TurnOut:
    if event.event == EventName.TURN_COMPLETED.value:
        result = TurnResult.model_validate(event.data["result"])
        return TurnOut(turn_id=turn_id, status=TurnStatus.COMPLETED, result=result, error=None)
    error = TurnError.model_validate(event.data["error"])
    return TurnOut(turn_id=turn_id, status=TurnStatus.FAILED, result=None, error=error)


@router.get("/{turn_id}", response_model=TurnOut)
async def get_turn(
    session_id: SessionIdParam,
    turn_id: TurnIdParam,
    credentials: BearerCredentials,
    services: ServicesDep,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Long-poll up to this many seconds.")
    ] = 0,
) -> TurnOut:
    token = bearer_token(credentials)
    wait = min(wait, services.settings.long_poll_max)
    return await _wait_for_finish(services.backend, session_id, turn_id, token, wait)
