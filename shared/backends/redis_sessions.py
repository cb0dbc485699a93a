"""A session's game state and owner in Redis: the state hash, written at a new version by a
compare-and-set, and the owner's token hash beside it."""

from __future__ import annotations

from collections.abc import Callable

from shared.backends.codec import STATE
from shared.backends.keys import SessionKeys
from shared.backends.redis_base import RedisBase
from shared.backends.redis_documents import menu_of, state_from
from shared.errors import SessionNotFound, VersionConflict
from shared.models import GameState

__all__ = ["RedisSessions"]


class RedisSessions(RedisBase):
    async def create(self, state: GameState, *, owner_hash: str, ttl: int | None = None) -> None:
        keys = SessionKeys(state.session_id)
        stored = state.model_copy(update={"version": 0})
        created = await self._run(
            "CREATE",
            keys.expiring(),
            [
                self.codec.pack(STATE, stored.model_dump_json()),
                owner_hash,
                ttl or self.session_ttl,
                menu_of(stored),
            ],
        )
        if not created:
            raise ValueError(f"session {state.session_id} already exists")

    async def get(self, session_id: str) -> GameState | None:
        async with self._guard():
            raw = await self.client.hget(SessionKeys(session_id).state, "state")
        return None if raw is None else state_from(raw)

    async def update(self, state: GameState) -> GameState:
        keys = SessionKeys(state.session_id)
        new_state = state.model_copy(update={"version": state.version + 1})
        reply = await self._run(
            "UPDATE",
            keys.expiring(),
            [
                state.version,
                self.codec.pack(STATE, new_state.model_dump_json()),
                self.session_ttl,
                menu_of(new_state),
            ],
        )
        self._check_cas(reply, state)
        return new_state

    async def delete(self, session_id: str) -> bool:
        async with self._guard():
            removed = await self.client.delete(*SessionKeys(session_id).all())
        return bool(removed)

    async def exists(self, session_id: str) -> bool:
        async with self._guard():
            return bool(await self.client.exists(SessionKeys(session_id).state))

    async def owned_state(
        self, session_id: str, is_owner: Callable[[str], bool]
    ) -> GameState | None:
        async with self._guard():
            owner, raw = await self.client.hmget(SessionKeys(session_id).state, ["owner", "state"])
        if raw is None or not isinstance(owner, str) or not is_owner(owner):
            return None
        return state_from(raw)

    async def owner_hash(self, session_id: str) -> str | None:
        async with self._guard():
            value = await self.client.hget(SessionKeys(session_id).state, "owner")
        return value if isinstance(value, str) else None

    # The compare-and-set's answer, of UPDATE here and of COMMIT (`RedisBackend.commit_turn`).
    @staticmethod
    def _check_cas(reply: list[str], state: GameState) -> None:
        if reply[0] == "missing":
            raise SessionNotFound(state.session_id)
        if reply[0] == "conflict":
            raise VersionConflict(state.session_id, state.version)
