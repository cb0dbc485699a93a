"""`/sessions`: create, read, delete."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from api.admission import RoomForNewSession
from api.deps import AuthorizedSession, AuthorizedState, Backend, SettingsDep
from api.openapi import AUTHORIZED, PUBLIC
from api.ratelimit import rate_limit, session_creation_limit
from api.schemas import NewSession, SessionCreated, SessionOut
from shared.errors import PortalsError
from shared.game.rules.choices import choices_for
from shared.game.story import story_filename, story_markdown
from shared.ids import new_player_token, new_session_id, token_hash
from shared.metrics import SESSIONS_CREATED
from shared.models import GameState, state_view

__all__ = ["router"]

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[Depends(rate_limit)])


@router.post(
    "",
    status_code=201,
    response_model=SessionCreated,
    responses=PUBLIC,
    dependencies=[Depends(session_creation_limit)],
)
async def create_session(
    backend: Backend,
    settings: SettingsDep,
    _room: RoomForNewSession,
    body: Annotated[NewSession | None, Body()] = None,
) -> SessionCreated:
    session_id, token = new_session_id(), new_player_token()
    seed = body.seed if body and body.seed is not None else secrets.randbits(63)
    state = GameState(session_id=session_id, seed=seed, max_turns=settings.max_turns)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    # Short-lived until its first turn (UNPLAYED_SESSION_TTL): an abandoned one goes soon.
    await backend.create(state, owner_hash=token_hash(token), ttl=settings.unplayed_session_ttl)
    SESSIONS_CREATED.inc()
    return SessionCreated(session_id=session_id, player_token=token, state=state_view(state))


@router.get("/{session_id}", response_model=SessionOut, responses=AUTHORIZED)
async def get_session(state: AuthorizedState) -> SessionOut:
    return SessionOut(session_id=state.session_id, version=state.version, state=state_view(state))


@router.get(
    "/{session_id}/story",
    response_class=Response,
    responses={**AUTHORIZED, 200: {"content": {"text/markdown": {}}}},
)
async def get_story(state: AuthorizedState) -> Response:
    """The adventure so far (or as it ended) as a Markdown document, for the player to keep
    or share."""
    return Response(
        story_markdown(state),
        media_type="text/markdown; charset=utf-8",
        headers={
            "Content-Disposition": f'inline; filename="{story_filename(state)}"',
            "Cache-Control": "no-store",
        },
    )


@router.delete("/{session_id}", status_code=204, response_class=Response, responses=AUTHORIZED)
async def delete_session(session_id: AuthorizedSession, backend: Backend) -> Response:
    unfinished = await backend.pending_turn_clients(session_id)
    await backend.delete(session_id)
    # Those turns will never finish: their client may send others (fair admission).
    for turn_id, client in unfinished:
        try:
            await backend.release_admission(turn_id, client)
        except PortalsError:
            break  # the store went away: the tickets lapse by themselves
    return Response(status_code=204)
