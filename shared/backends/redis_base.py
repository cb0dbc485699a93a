"""What the parts of `RedisBackend` share: its client type, and the members its mixins use.

`RedisBackend` (in `redis`) sets or defines every member of `RedisBase`; its mixins (sessions,
events, leases, pending marks, limits) subclass `RedisBase` so that mypy checks their use of
them, and mypy refuses a `RedisBackend` that lacks one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import redis.asyncio as aioredis

from shared.backends.codec import Codec
from shared.backends.keys import AdmissionKeys
from shared.models import GameState, TurnRecord

__all__ = ["Client", "RedisBase"]


# A standalone server (or a Sentinel-managed one, through its URL) or a Redis Cluster.
Client = aioredis.Redis | aioredis.RedisCluster


class RedisBase(Protocol):
    client: Client
    stream_client: Client
    codec: Codec
    admission: AdmissionKeys
    pending_sessions: str
    session_ttl: int
    session_ttl_slack: int
    turn_records_kept: int
    max_block: float

    def _guard(self) -> AbstractAsyncContextManager[None]:
        """Store outages raised as `BackendUnavailable`."""
        ...

    async def _run(
        self,
        name: str,
        keys: list[str],
        args: list[Any],
        *,
        pending_mark: tuple[str, float] | None = None,
    ) -> Any:
        """Run the Lua script `name` of `redis_scripts`, guarded and traced."""
        ...

    async def owned_state(
        self, session_id: str, is_owner: Callable[[str], bool]
    ) -> GameState | None:
        """The state for its owner only (`RedisSessions`)."""
        ...

    def _ticket_keys(self, client: str) -> list[str]:
        """A client's admission ticket's keys (`RedisLimits`)."""
        ...

    async def _earlier_turn(self, session_id: str, turn_id: str, raw: str) -> TurnRecord:
        """The turn an Idempotency-Key was first sent with, from its stored record (`raw`,
        empty if pruned)."""
        ...

    async def _load_record(self, session_id: str, raw: str | bytes) -> TurnRecord:
        """A stored turn record, with what was left out of it put back."""
        ...
