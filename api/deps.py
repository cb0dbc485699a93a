"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.enqueue import Enqueuer
from shared.backends import SessionBackend
from shared.errors import InvalidRequest, SessionNotFound, Unauthorized
from shared.ids import is_session_id, is_turn_id, token_matches
from shared.models import GameState
from shared.settings import Settings

if TYPE_CHECKING:
    from api.admission import StoreMemoryGuard
    from api.streams import StreamRegistry

__all__ = [
    "AuthorizedState",
    "AuthorizedSession",
    "BearerCredentials",
    "PlayerToken",
    "QueryToken",
    "Backend",
    "Queue",
    "Services",
    "ServicesDep",
    "SessionIdParam",
    "SettingsDep",
    "TurnIdParam",
    "bearer_token",
    "check_owner",
    "services_of",
]


@dataclass
class Services:
    settings: Settings
    backend: SessionBackend
    enqueuer: Enqueuer
    memory_guard: StoreMemoryGuard
    streams: StreamRegistry


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# The dependencies are coroutines even where they need not await anything: FastAPI runs a plain
# function in its thread pool, a thread hop for each one on every request. Each reads the
# request, not a `Services` dependency: FastAPI solves a dependency's own dependencies again
# wherever it is used (its cache spares only the call), and a route's tree of ~16 such nodes
# cost about as much CPU per request as a store round trip.
async def _services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(_services)]


async def _settings(request: Request) -> Settings:
    return services_of(request).settings


async def _backend(request: Request) -> SessionBackend:
    return services_of(request).backend


async def _enqueuer(request: Request) -> Enqueuer:
    return services_of(request).enqueuer


SettingsDep = Annotated[Settings, Depends(_settings)]
Backend = Annotated[SessionBackend, Depends(_backend)]
Queue = Annotated[Enqueuer, Depends(_enqueuer)]


async def _session_id(session_id: Annotated[str, Path()]) -> str:
    # Checked before any key is built from it. An id of another shape cannot name a session,
    # so refusing it as malformed reveals nothing about which sessions exist.
    if not is_session_id(session_id):
        raise InvalidRequest("session_id is not a session id of this service.", field="session_id")
    return session_id


async def _turn_id(turn_id: Annotated[str, Path()]) -> str:
    # Solved after the session id wherever a route declares that first, as every route does.
    if not is_turn_id(turn_id):
        raise InvalidRequest("turn_id is not a turn id of this service.", field="turn_id")
    return turn_id


SessionIdParam = Annotated[str, Depends(_session_id)]
TurnIdParam = Annotated[str, Depends(_turn_id)]


# Declared as security schemes so the OpenAPI document says how to authenticate; parsing
# errors are ours to report (auto_error=False), in the service's error format.
player_token_header = HTTPBearer(
    auto_error=False,
    scheme_name="PlayerToken",
    description="The player_token returned by POST /sessions.",
)
player_token_query = APIKeyQuery(
    name="token",
    auto_error=False,
    scheme_name="PlayerTokenQuery",
    description="The player token as a query parameter, for EventSource (events only).",
)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(player_token_header)]
QueryToken = Annotated[str | None, Security(player_token_query)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise Unauthorized()
    if not _TOKEN.fullmatch(credentials.credentials):
        raise Unauthorized("The Authorization header must be 'Bearer <player_token>'.")
    return credentials.credentials


async def _player_token(credentials: BearerCredentials) -> str:
    return bearer_token(credentials)


# The token checked as a dependency: a request without one is refused (401) before its body
# is validated, as on the routes that read the state in a dependency.
PlayerToken = Annotated[str, Depends(_player_token)]


async def check_owner(backend: SessionBackend, session_id: str, token: str) -> str:
    owner = await backend.owner_hash(session_id) if _TOKEN.fullmatch(token) else None
    # A wrong token looks exactly like a missing session: tokens cannot probe for sessions.
    if owner is None or not token_matches(token, owner):
        raise SessionNotFound(session_id)
    return session_id


async def _authorized_session(
    session_id: SessionIdParam, backend: Backend, credentials: BearerCredentials
) -> str:
    return await check_owner(backend, session_id, bearer_token(credentials))


AuthorizedSession = Annotated[str, Depends(_authorized_session)]


async def _authorized_state(
    session_id: SessionIdParam, backend: Backend, credentials: BearerCredentials
) -> GameState:
    """The session's state, for its owner only; owner and state are read in one round trip."""
    token = bearer_token(credentials)
    state = await backend.owned_state(session_id, lambda owner: token_matches(token, owner))
    # A wrong token looks exactly like a missing session (nor is the state decoded for it).
    if state is None:
        raise SessionNotFound(session_id)
    return state


AuthorizedState = Annotated[GameState, Depends(_authorized_state)]
