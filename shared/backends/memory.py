"""`InMemoryBackend`: the session backend for dev mode and fast tests.

One process only (that is why it requires eager Celery). It is thread-safe: every method
takes one lock, so the eager worker thread and the gateway's event loop can share it, and
readers waiting for events are woken on their own loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.backends.base import (
    EVENTS_CAP,
    Admission,
    Claim,
    Committed,
    IdempotencyClaim,
    TokenTally,
)
from shared.errors import (
    IdempotencyKeyReused,
    LeaseLost,
    SessionNotFound,
    TooManyPendingTurns,
    VersionConflict,
)
from shared.ids import event_order
from shared.models import (
    EventName,
    GameState,
    SessionEvent,
    TurnError,
    TurnRecord,
    TurnStatus,
)

__all__ = ["InMemoryBackend"]

_FINAL = {EventName.TURN_COMPLETED, EventName.TURN_FAILED}


@dataclass
class _Session:
    state: GameState
    owner_hash: str
    expires_at: float
    inbox: list[str] = field(default_factory=list)
    turns: dict[str, TurnRecord] = field(default_factory=dict)
    turn_log: list[str] = field(default_factory=list)
    idempotency: dict[str, tuple[str, str]] = field(default_factory=dict)
    events: list[SessionEvent] = field(default_factory=list)
    # The fencing token of the attempt started last (see SessionBackend.start_turn).
    runner: str | None = None

    def superseded(self, runner: str | None) -> bool:
        return bool(runner) and self.runner != runner


class InMemoryBackend:
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

    def _emit(self, session_id: str, session: _Session, name: str, data: dict[str, Any]) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_event
        self._last_event = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        event_id = f"{self._last_event[0]}-{self._last_event[1]}"
        session.events.append(SessionEvent(id=event_id, event=name, data=data))
        del session.events[: max(0, len(session.events) - EVENTS_CAP)]
        for loop, waiter in self._waiters.get(session_id, []):
            loop.call_soon_threadsafe(waiter.set)
        return event_id

    def _compact(self, session: _Session) -> None:
        """After a turn finishes; the same rule as `redis_scripts.compact`."""
        kept: list[SessionEvent] = []
        finals = 0
        for event in reversed(session.events):
            if event.data.get("turn_id") in session.inbox:
                kept.append(event)
            elif event.event in _FINAL and finals < self.events_maxlen:
                kept.append(event)
                finals += 1
        session.events = kept[::-1]

    # -- sessions ---------------------------------------------------------------------------
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

    # -- turns ------------------------------------------------------------------------------
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

    async def pending_turns(self, session_id: str) -> list[TurnRecord]:
        with self._lock:
            session = self._live(session_id)
            if session is None:
                return []
            records = (session.turns.get(turn_id) for turn_id in session.inbox)
            return [record.model_copy() for record in records if record is not None]

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
            session = self._live(session_id)
            if session is None or not session.inbox or session.inbox[0] != turn_id:
                return None
            record = session.turns.get(turn_id)
            if record is None or record.status.finished:
                return None
            running = record.model_copy(
                update={
                    "status": TurnStatus.RUNNING,
                    "started_at": now,
                    "attempts": record.attempts + 1,
                }
            )
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
    async def append_event(
        self, session_id: str, event: str, data: dict[str, Any], *, runner: str | None = None
    ) -> str:
        with self._lock:
            session = self._require(session_id)
            if session.superseded(runner):
                raise LeaseLost(session_id, runner or "")
            return self._emit(session_id, session, event, data)

    def _events_after(self, session_id: str, after: str, count: int) -> list[SessionEvent]:
        session = self._live(session_id)
        if session is None:
            return []
        cursor = event_order(after)
        return [e for e in session.events if event_order(e.id) > cursor][:count]

    async def read_events(
        self, session_id: str, after: str, *, timeout: float = 0.0, count: int = 100
    ) -> list[SessionEvent]:
        waiter = asyncio.Event()
        entry = (asyncio.get_running_loop(), waiter)
        with self._lock:
            events = self._events_after(session_id, after, count)
            if events or timeout <= 0:
                return events
            self._waiters.setdefault(session_id, []).append(entry)
        try:
            try:
                await asyncio.wait_for(waiter.wait(), timeout)
            except TimeoutError:
                pass
            with self._lock:
                return self._events_after(session_id, after, count)
        finally:
            with self._lock:
                waiters = self._waiters.get(session_id, [])
                waiters.remove(entry)
                if not waiters:
                    self._waiters.pop(session_id, None)

    async def turn_after_cursor(
        self, session_id: str, turn_id: str, is_owner: Callable[[str], bool]
    ) -> tuple[str, TurnRecord | None]:
        with self._lock:
            session = self._live(session_id)
            if session is None or not is_owner(session.owner_hash):
                raise SessionNotFound(session_id)
        return await self.last_event_id(session_id), await self.get_turn(session_id, turn_id)

    async def last_event_id(self, session_id: str) -> str:
        with self._lock:
            session = self._live(session_id)
            return session.events[-1].id if session and session.events else "0-0"

    # -- processing lease ------------------------------------------------------------------
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
        self, session_id: str, holder: str, ttl: float, *, reclaim: str = ""
    ) -> Claim | None:
        with self._lock:
            if not self._take_lease(session_id, holder, ttl, reclaim):
                return None
            head = self._head(session_id)
            if head is None:
                return Claim(head=None, state=None)
            state = self._sessions[session_id].state.model_copy(deep=True)
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

    # -- sessions with waiting turns ------------------------------------------------------
    async def mark_pending(self, session_id: str, now: float) -> None:
        with self._lock:
            self._pending[session_id] = now

    async def active_sessions(self, since: float) -> int:
        with self._lock:
            self._active = {s: t for s, t in self._active.items() if t >= since}
            return len(self._active)

    async def memory_usage(self) -> tuple[int, int] | None:
        return None  # this process's heap: no server to watch

    async def stale_pending(self, older_than: float, limit: int) -> list[tuple[str, float]]:
        with self._lock:
            stale = sorted((t, s) for s, t in self._pending.items() if t <= older_than)
            return [(s, t) for t, s in stale[:limit]]

    async def settle_pending(self, session_id: str, marked_at: float) -> None:
        with self._lock:
            if self._pending.get(session_id) == marked_at:
                del self._pending[session_id]

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

    # -- lifecycle --------------------------------------------------------------------------
    async def memory_use(self) -> tuple[int, int] | None:
        return None  # one process's memory: nothing the store itself could report

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

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
