"""What bounds the service's load in memory, across sessions: admission tickets of the turns
in flight, per-client request counts, the LLM tokens a session and a client used, and (never
known here) the store's own memory use."""

from __future__ import annotations

import time

from shared.backends.base import Admission, TokenTally
from shared.backends.memory_base import MemoryBase

__all__ = ["MemoryLimits"]


class MemoryLimits(MemoryBase):
    _request_counts: dict[tuple[str, int], int]
    # Admission tickets: turn id -> (client, lapses at).
    _admitted: dict[str, tuple[str, float]]
    _session_tokens: dict[str, dict[str, int]]
    _client_tokens: dict[tuple[str, str], int]

    # -- rate limits --------------------------------------------------------------------------
    async def admit_turn(
        self,
        turn_id: str,
        client: str,
        *,
        now: float,
        ttl: float,
        max_total: int,
        max_per_client: int,
    ) -> Admission:
        with self._lock:
            tickets = self._admitted
            for lapsed in [t for t, (_, until) in tickets.items() if until <= now]:
                del tickets[lapsed]
            if len(tickets) >= max_total:
                return Admission.OVERLOADED
            held = sum(1 for owner, _ in tickets.values() if owner == client)
            if max_per_client and held >= max_per_client:
                return Admission.CLIENT_BUSY
            tickets[turn_id] = (client, now + ttl)
            return Admission.ADMITTED

    async def release_admission(self, turn_id: str, client: str | None) -> None:
        with self._lock:
            self._admitted.pop(turn_id, None)

    async def count_request(self, client: str, window: int) -> tuple[int, float]:
        now = time.time()
        number = int(now // window)
        with self._lock:
            stale = [k for k in self._request_counts if k[1] < number]
            for key in stale:
                del self._request_counts[key]
            count = self._request_counts.get((client, number), 0) + 1
            self._request_counts[(client, number)] = count
        return count, (number + 1) * window - now

    # -- memory use --------------------------------------------------------------------------
    async def memory_use(self) -> tuple[int, int] | None:
        return None  # one process's memory: nothing the store itself could report

    async def memory_usage(self) -> tuple[int, int] | None:
        return None  # this process's heap: no server to watch

    # -- LLM token accounting ---------------------------------------------------------------
    async def llm_tokens(self, session_id: str, client: str | None, day: str) -> TokenTally:
        with self._lock:
            mine = self._session_tokens.get(session_id, {})
            by_client = self._client_tokens.get((client, day), 0) if client else 0
            return TokenTally(mine.get(day, 0), mine.get("total", 0), by_client)

    async def add_llm_tokens(
        self, session_id: str, client: str | None, day: str, tokens: int
    ) -> None:
        with self._lock:
            mine = self._session_tokens.setdefault(session_id, {})
            mine[day] = mine.get(day, 0) + tokens
            mine["total"] = mine.get("total", 0) + tokens
            if client:
                self._client_tokens[(client, day)] = (
                    self._client_tokens.get((client, day), 0) + tokens
                )
