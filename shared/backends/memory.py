"""`InMemoryBackend`: the session backend for dev mode and fast tests.

One process only (that is why it requires eager Celery). It is thread-safe: every method
takes one lock, so the eager worker thread and the gateway's event loop can share it, and
readers waiting for events are woken on their own loop with `call_soon_threadsafe`.

Here: its construction, the helpers every part uses and a session's turns. The rest is in the
mixins it inherits: sessions (`memory_sessions`), events (`memory_events`), the processing
lease (`memory_leases`), sessions with waiting turns (`memory_pending`) and the service-wide
limits (`memory_limits`); a session's record and what the parts share are in `memory_base`.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from shared.backends.base import Admission, Committed, IdempotencyClaim, NewTurn
from shared.backends.memory_base import _Session
from shared.backends.memory_events import MemoryEvents
from shared.backends.memory_leases import MemoryLeases
from shared.backends.memory_limits import MemoryLimits
from shared.backends.memory_pending import MemoryPending
from shared.backends.memory_sessions import MemorySessions
from shared.errors import (
    IdempotencyKeyReused,
    LeaseLost,
    SessionNotFound,
    TooManyPendingTurns,
    VersionConflict,
)
from shared.models import GameState, TurnError, TurnRecord, TurnStatus

__all__ = ["InMemoryBackend"]


class InMemoryBackend(MemorySessions, MemoryEvents, MemoryLeases, MemoryPending, MemoryLimits):
    def __init__(
        self,
        *,
        session_ttl: int = 86400,
        events_maxlen: int = 8,
        turn_records_kept: int = 12,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_ttl = session_ttl
        self.events_maxlen = events_maxlen
        self.turn_records_kept = turn_records_kept
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._last_event = (0, 0)
        self._request_counts: dict[tuple[str, int], int] = {}
        # Admission tickets: turn id -> (client, lapses at).
        self._admitted: dict[str, tuple[str, float]] = {}
        self._pending: dict[str, float] = {}
        self._active: dict[str, float] = {}
        self._session_tokens: dict[str, dict[str, int]] = {}
        self._client_tokens: dict[tuple[str, str], int] = {}

    # -- helpers ----------------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._leases.clear()
            self._pending.clear()
            self._request_counts.clear()
            self._admitted.clear()

    @property
    def session_count(self) -> int:
        with self._lock:
            self._expire()
            return len(self._sessions)

    def _drop(self, session_id: str) -> bool:
        self._leases.pop(session_id, None)
        self._pending.pop(session_id, None)
        self._session_tokens.pop(session_id, None)
        return self._sessions.pop(session_id, None) is not None

    def _expire(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            self._drop(sid)

    def _live(self, session_id: str) -> _Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires_at <= self._clock():
            self._drop(session_id)
            return None
        return session

    def _require(self, session_id: str) -> _Session:
        session = self._live(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def _touch(self, session: _Session) -> None:
        session.expires_at = self._clock() + self.session_ttl

    # -- turns ------------------------------------------------------------------------------
    async def admit_owned_turn(
        self,
        session_id: str,
        owner_hash: str,
        turn_id: str,
        client: str,
        *,
        now: float,
        ttl: float,
        max_total: int,
        max_per_client: int,
    ) -> tuple[GameState, Admission] | None:
        state = await self.owned_state(
            session_id, lambda owner: hmac.compare_digest(owner, owner_hash)
        )
        if state is None:
            return None
        admission = await self.admit_turn(
            turn_id, client, now=now, ttl=ttl, max_total=max_total, max_per_client=max_per_client
        )
        return state, admission

    async def accept_owned_turn(self, turn: NewTurn) -> TurnRecord | None:
        record = turn.record
        sid = record.session_id
        # One step, as in Redis: nothing else reads or writes between the checks and the
        # writes (the lock is re-entrant, and nothing below suspends).
        with self._lock:
            session = self._live(sid)
            if session is None or not hmac.compare_digest(session.owner_hash, turn.owner_hash):
                raise SessionNotFound(sid)
            if turn.idempotency is not None:
                earlier = self._earlier_turn(session, turn.idempotency)
                if earlier is not None:
                    return earlier
            record = turn.checked_against(session.state)
            if len(session.inbox) >= turn.max_pending:
                raise TooManyPendingTurns(sid, turn.max_pending)
            admission = await self.admit_turn(
                record.turn_id,
                record.client or "",
                now=record.accepted_at,
                ttl=turn.ticket_ttl,
                max_total=turn.max_total,
                max_per_client=turn.max_per_client,
            )
            admission.refuse(turn.max_per_client)
            return await self.accept_turn(
                record,
                max_pending=turn.max_pending,
                idempotency=turn.idempotency,
                mark_pending=True,
            )

    async def accept_turn(
        self,
        record: TurnRecord,
        *,
        max_pending: int,
        idempotency: IdempotencyClaim | None,
        mark_pending: bool = False,
    ) -> TurnRecord:
        sid = record.session_id
        if mark_pending:
            await self.mark_pending(sid, record.accepted_at)
            with self._lock:
                self._active[sid] = max(self._active.get(sid, 0.0), record.accepted_at)
        with self._lock:
            session = self._require(sid)
            if idempotency is not None:
                earlier = self._earlier_turn(session, idempotency)
                if earlier is not None:
                    return earlier
            if len(session.inbox) >= max_pending:
                raise TooManyPendingTurns(sid, max_pending)
            session.turns[record.turn_id] = record.model_copy()
            session.inbox.append(record.turn_id)
            session.turn_log.append(record.turn_id)
            # Every pending turn's record, and those of the newest finished turns.
            checked, length = 0, len(session.turn_log)
            while length - len(session.inbox) > self.turn_records_kept and checked < length:
                oldest = session.turn_log.pop(0)
                if oldest in session.inbox:  # never prune a pending turn's record
                    session.turn_log.append(oldest)
                else:
                    session.turns.pop(oldest, None)
                    length -= 1
                checked += 1
            if idempotency is not None:
                session.idempotency[idempotency.key] = (record.turn_id, idempotency.fingerprint)
            self._emit(sid, session, "turn.queued", {"turn_id": record.turn_id})
            self._touch(session)
            return record

    async def idempotent_turn(
        self, session_id: str, idempotency: IdempotencyClaim
    ) -> TurnRecord | None:
        with self._lock:
            session = self._require(session_id)
            return self._earlier_turn(session, idempotency)

    @staticmethod
    def _earlier_turn(session: _Session, idempotency: IdempotencyClaim) -> TurnRecord | None:
        if idempotency.key not in session.idempotency:
            return None
        turn_id, fingerprint = session.idempotency[idempotency.key]
        if fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused(session.state.session_id, idempotency.key)
        earlier = session.turns.get(turn_id)
        if earlier is not None:
            return earlier.model_copy()
        # Its record was pruned long ago: it certainly finished.
        return TurnRecord(
            turn_id=turn_id,
            session_id=session.state.session_id,
            action="",
            accepted_at=0.0,
            status=TurnStatus.COMPLETED,
        )

    async def withdraw_turn(
        self, session_id: str, turn_id: str, error: TurnError, *, idempotency_key: str | None = None
    ) -> bool:
        with self._lock:
            session = self._live(session_id)
            if session is None or turn_id not in session.inbox:
                return False
            if session.inbox[0] == turn_id:
                session.runner = None  # a running attempt of it may no longer publish
            session.inbox.remove(turn_id)
            stored = session.turns.get(turn_id)
            if stored is None:
                return True
            record = stored.model_copy(update={"status": TurnStatus.FAILED, "error": error})
            session.turns[turn_id] = record
            if idempotency_key is not None:
                session.idempotency.pop(idempotency_key, None)
            self._emit(
                session_id,
                session,
                "turn.failed",
                {"turn_id": turn_id, "error": error.model_dump()},
            )
            self._compact(session)
            self._touch(session)
            return True

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord | None:
        with self._lock:
            session = self._live(session_id)
            record = None if session is None else session.turns.get(turn_id)
            return None if record is None else record.model_copy()

    async def head_turn(
        self, session_id: str, *, lease: tuple[str, float] | None = None
    ) -> TurnRecord | None:
        with self._lock:
            if lease is not None and not self._renew(session_id, *lease):
                raise LeaseLost(session_id, lease[0])
            return self._head(session_id)

    def _head(self, session_id: str) -> TurnRecord | None:
        """The oldest pending turn's record; an inbox id whose record is gone is dropped."""
        session = self._live(session_id)
        while session is not None and session.inbox:
            record = session.turns.get(session.inbox[0])
            if record is not None:
                return record.model_copy()
            session.inbox.pop(0)  # its record is gone: it can never be applied
        return None

    async def pending_turn_clients(self, session_id: str) -> list[tuple[str, str | None]]:
        with self._lock:
            session = self._live(session_id)
            if session is None:
                return []
            records = ((t, session.turns.get(t)) for t in session.inbox)
            return [(t, record.client if record else None) for t, record in records]

    async def pending_count(self, session_id: str) -> int:
        with self._lock:
            session = self._live(session_id)
            return 0 if session is None else len(session.inbox)

    async def start_turn(
        self,
        session_id: str,
        turn_id: str,
        now: float,
        *,
        head: TurnRecord | None = None,
        runner: str | None = None,
        holder: str | None = None,
    ) -> TurnRecord | None:
        with self._lock:
            if holder and not self._holds(session_id, holder):
                return None
            return self._start(session_id, turn_id, now, runner)

    def _start(
        self, session_id: str, turn_id: str, now: float, runner: str | None
    ) -> TurnRecord | None:
        with self._lock:
            session = self._live(session_id)
            if session is None or not session.inbox or session.inbox[0] != turn_id:
                return None
            record = session.turns.get(turn_id)
            if record is None or record.status.finished:
                return None
            running = record.next_attempt(now)
            session.turns[turn_id] = running
            session.runner = runner or None
            self._emit(
                session_id,
                session,
                "turn.started",
                {"turn_id": turn_id, "attempt": running.attempts},
            )
            return running.model_copy()  # no refresh: as in Redis, accept and commit do

    async def commit_turn(
        self,
        state: GameState,
        record: TurnRecord,
        *,
        runner: str | None = None,
        lease: tuple[str, float] | None = None,
        release_ticket: bool = False,
    ) -> Committed:
        committed = self._commit(state, record, runner, lease)
        if not release_ticket:
            return committed
        await self.release_admission(record.turn_id, record.client)
        return replace(committed, ticket_released=True)

    def _commit(
        self,
        state: GameState,
        record: TurnRecord,
        runner: str | None,
        lease: tuple[str, float] | None,
    ) -> Committed:
        sid = state.session_id
        with self._lock:
            session = self._require(sid)
            if session.superseded(runner):
                raise LeaseLost(sid, runner or "")
            if (
                session.state.version != state.version
                or not session.inbox
                or session.inbox[0] != record.turn_id
            ):
                raise VersionConflict(sid, state.version)
            session.state = state.model_copy(update={"version": state.version + 1}, deep=True)
            session.runner = None
            session.inbox.pop(0)
            session.turns[record.turn_id] = record.model_copy()
            result = record.result.model_dump(mode="json") if record.result else None
            self._emit(
                sid, session, "turn.completed", {"turn_id": record.turn_id, "result": result}
            )
            self._compact(session)  # no refresh: as in Redis, this turn's accept did
            version = session.state.version
            if lease is None or not self._holds(sid, lease[0]):
                return Committed(version)
            if not session.inbox:
                del self._leases[sid]
                return Committed(version, lease_released=True)
            following = session.turns.get(session.inbox[0])
            if following is None:
                return Committed(version)
            self._renew(sid, *lease)
            return Committed(version, next_turn=following.model_copy())

    async def fail_turn(self, record: TurnRecord, *, runner: str | None = None) -> bool:
        sid = record.session_id
        with self._lock:
            session = self._live(sid)
            if session is None or not session.inbox or session.inbox[0] != record.turn_id:
                return False
            if session.superseded(runner):
                raise LeaseLost(sid, runner or "")
            session.runner = None
            session.inbox.pop(0)
            session.turns[record.turn_id] = record.model_copy()
            error = record.error.model_dump(mode="json") if record.error else None
            self._emit(sid, session, "turn.failed", {"turn_id": record.turn_id, "error": error})
            self._compact(session)
            self._touch(session)
            return True

    # -- events -----------------------------------------------------------------------------
    # -- lifecycle --------------------------------------------------------------------------
    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
