"""A session's game state and owner in memory: the state, written at a new version by a
compare-and-set, and the owner's token hash beside it, in the session's record."""

from __future__ import annotations

from collections.abc import Callable

from shared.backends.memory_base import MemoryBase, _Session
from shared.errors import VersionConflict
from shared.models import GameState

__all__ = ["MemorySessions"]


class MemorySessions(MemoryBase):
    async def create(self, state: GameState, *, owner_hash: str, ttl: int | None = None) -> None:
        with self._lock:
            # Expired sessions nobody asks for again would otherwise stay in memory for good.
            self._expire()
            if self._live(state.session_id) is not None:
                raise ValueError(f"session {state.session_id} already exists")
            stored = state.model_copy(update={"version": 0}, deep=True)
            self._sessions[state.session_id] = _Session(
                stored, owner_hash, self._clock() + (ttl or self.session_ttl)
            )

    async def get(self, session_id: str) -> GameState | None:
        with self._lock:
            session = self._live(session_id)
            return None if session is None else session.state.model_copy(deep=True)

    async def update(self, state: GameState) -> GameState:
        with self._lock:
            session = self._require(state.session_id)
            if session.state.version != state.version:
                raise VersionConflict(state.session_id, state.version)
            session.state = state.model_copy(update={"version": state.version + 1}, deep=True)
            self._touch(session)
            return session.state.model_copy(deep=True)

    async def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._drop(session_id)

    async def exists(self, session_id: str) -> bool:
        with self._lock:
            return self._live(session_id) is not None

    async def owner_hash(self, session_id: str) -> str | None:
        with self._lock:
            session = self._live(session_id)
            return None if session is None else session.owner_hash

    async def owned_state(
        self, session_id: str, is_owner: Callable[[str], bool]
    ) -> GameState | None:
        with self._lock:
            session = self._live(session_id)
            if session is None or not is_owner(session.owner_hash):
                return None
            return session.state.model_copy(deep=True)
