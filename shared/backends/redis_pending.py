"""Sessions with waiting turns, in two sorted sets outside any session's slot: the pending
marks the sweeper of a task queue reads (sessions to queue again), and the active sessions
the gauge counts. Both are marked with an accepted turn (see `RedisBackend._run_script`)."""

from __future__ import annotations

from typing import cast

from shared.backends.keys import ACTIVE_SESSIONS, SessionKeys
from shared.backends.redis_base import RedisBase

__all__ = ["RedisPending"]


class RedisPending(RedisBase):
    async def mark_pending(self, session_id: str, now: float) -> None:
        async with self._guard():
            await self.client.zadd(self.pending_sessions, {SessionKeys(session_id).session_id: now})

    async def stale_pending(self, older_than: float, limit: int) -> list[tuple[str, float]]:
        async with self._guard():
            rows = await self.client.zrangebyscore(
                self.pending_sessions, "-inf", older_than, start=0, num=limit, withscores=True
            )
        pairs = cast(list[tuple[str, float]], rows)
        return [(str(member), float(score)) for member, score in pairs]

    async def settle_pending(self, session_id: str, marked_at: float) -> None:
        await self._run("SETTLE_PENDING", [self.pending_sessions], [session_id, repr(marked_at)])

    async def active_sessions(self, since: float) -> int:
        async with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(ACTIVE_SESSIONS, "-inf", f"({since}")
            pipe.zcard(ACTIVE_SESSIONS)
            _, count = await pipe.execute()
        return int(count)
