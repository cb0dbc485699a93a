"""A session's processing lease in Redis: one key per session, the holder's token its value,
expiring unless renewed."""

from __future__ import annotations

from shared.backends.base import Claim
from shared.backends.keys import SessionKeys
from shared.backends.redis_base import RedisBase
from shared.backends.redis_documents import state_from

__all__ = ["RedisLeases"]


class RedisLeases(RedisBase):
    async def acquire_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        lease = SessionKeys(session_id).lease
        async with self._guard():
            return bool(await self.client.set(lease, holder, nx=True, px=int(ttl * 1000)))

    async def claim_session(
        self,
        session_id: str,
        holder: str,
        ttl: float,
        *,
        reclaim: str = "",
        start: tuple[str, float] | None = None,
    ) -> Claim | None:
        keys = SessionKeys(session_id)
        runner, now = start or ("", 0.0)
        reply = await self._run(
            "CLAIM", [*keys.expiring(), keys.lease], [holder, int(ttl * 1000), reclaim, runner]
        )
        if reply is None:
            return None
        if not reply:
            return Claim(head=None, state=None)
        record, state = reply[0], reply[1]
        head = await self._load_record(session_id, record)
        started = len(reply) > 2
        if started:
            # Packed at acceptance, before anyone knew when it would start.
            head = head.model_copy(update={"started_at": now})
        return Claim(head=head, state=state_from(state) if state else None, started=started)

    async def renew_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        renewed = await self._run(
            "RENEW", [SessionKeys(session_id).lease], [holder, int(ttl * 1000)]
        )
        return bool(renewed)

    async def lease_time_left(self, session_id: str) -> float:
        async with self._guard():
            left_ms = int(await self.client.pttl(SessionKeys(session_id).lease))
        return max(0, left_ms) / 1000

    async def release_lease(self, session_id: str, holder: str) -> int:
        keys = SessionKeys(session_id)
        return int(await self._run("RELEASE", [keys.lease, keys.inbox], [holder]))

    async def release_orphaned_lease(self, session_id: str, owner: str) -> bool:
        if not owner:
            return False
        keys = SessionKeys(session_id)
        return bool(await self._run("RELEASE_ORPHANED", [keys.lease], [owner]))
