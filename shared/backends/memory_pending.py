"""Sessions with waiting turns, in memory: the pending marks the sweeper reads (sessions to
queue again), and the active sessions the gauge counts. Both are marked with an accepted turn
(see `InMemoryBackend.accept_turn`)."""

from __future__ import annotations

from shared.backends.memory_base import MemoryBase

__all__ = ["MemoryPending"]


class MemoryPending(MemoryBase):
    _pending: dict[str, float]
    _active: dict[str, float]

    async def mark_pending(self, session_id: str, now: float) -> None:
        with self._lock:
            self._pending[session_id] = now

    async def active_sessions(self, since: float) -> int:
        with self._lock:
            self._active = {s: t for s, t in self._active.items() if t >= since}
            return len(self._active)

    async def stale_pending(self, older_than: float, limit: int) -> list[tuple[str, float]]:
        with self._lock:
            stale = sorted((t, s) for s, t in self._pending.items() if t <= older_than)
            return [(s, t) for t, s in stale[:limit]]

    async def settle_pending(self, session_id: str, marked_at: float) -> None:
        with self._lock:
            if self._pending.get(session_id) == marked_at:
                del self._pending[session_id]
