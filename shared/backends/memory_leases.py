"""A session's processing lease in memory: the holder's token and when it lapses, per
session, lapsing unless renewed."""

from __future__ import annotations

from shared.backends.base import Claim
from shared.backends.memory_base import MemoryBase
from shared.models import TurnStatus

__all__ = ["MemoryLeases"]


class MemoryLeases(MemoryBase):
    _leases: dict[str, tuple[str, float]]

    async def acquire_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        with self._lock:
            return self._take_lease(session_id, holder, ttl, reclaim="")

    def _take_lease(self, session_id: str, holder: str, ttl: float, reclaim: str) -> bool:
        current = self._leases.get(session_id)
        held = current is not None and current[1] > self._clock()
        if held and not (reclaim and current is not None and current[0] == reclaim):
            return False
        self._leases[session_id] = (holder, self._clock() + ttl)
        return True

    async def claim_session(
        self,
        session_id: str,
        holder: str,
        ttl: float,
        *,
        reclaim: str = "",
        start: tuple[str, float] | None = None,
    ) -> Claim | None:
        with self._lock:
            # The holder that has it already keeps it: a claim asked again answers the same.
            if not self._renew(session_id, holder, ttl):
                if not self._take_lease(session_id, holder, ttl, reclaim):
                    return None
            head = self._head(session_id)
            if head is None:
                return Claim(head=None, state=None)
            session = self._sessions[session_id]
            state = session.state.model_copy(deep=True)
            if start is None:
                return Claim(head=head, state=state)
            runner, now = start
            if session.runner == runner:
                return Claim(head=head, state=state, started=True)
            if head.attempts == 0 and head.status is TurnStatus.QUEUED:
                running = self._start(session_id, head.turn_id, now, runner)
                if running is not None:
                    return Claim(head=running, state=state, started=True)
            return Claim(head=head, state=state)

    async def renew_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        with self._lock:
            return self._renew(session_id, holder, ttl)

    def _holds(self, session_id: str, holder: str) -> bool:
        current = self._leases.get(session_id)
        return current is not None and current[0] == holder and current[1] > self._clock()

    def _renew(self, session_id: str, holder: str, ttl: float) -> bool:
        current = self._leases.get(session_id)
        if current is None or current[0] != holder or current[1] <= self._clock():
            return False
        self._leases[session_id] = (holder, self._clock() + ttl)
        return True

    async def lease_time_left(self, session_id: str) -> float:
        with self._lock:
            current = self._leases.get(session_id)
            return 0.0 if current is None else max(0.0, current[1] - self._clock())

    async def release_lease(self, session_id: str, holder: str) -> int:
        with self._lock:
            current = self._leases.get(session_id)
            if current is not None and current[0] == holder:
                del self._leases[session_id]
            session = self._live(session_id)
            return 0 if session is None else len(session.inbox)

    async def release_orphaned_lease(self, session_id: str, owner: str) -> bool:
        with self._lock:
            current = self._leases.get(session_id)
            if not owner or current is None or not current[0].startswith(owner):
                return False
            del self._leases[session_id]
            return True
