"""A session's event stream in memory: appends (fenced by the attempt's runner token), reads
that wait on the reader's own loop until an append wakes them, and the compaction after a
turn finishes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from shared.backends.base import EVENTS_CAP
from shared.backends.memory_base import MemoryBase, _Session
from shared.errors import LeaseLost, SessionNotFound
from shared.ids import event_order
from shared.models import EventName, SessionEvent, TurnRecord

__all__ = ["MemoryEvents"]

_FINAL = {EventName.TURN_COMPLETED, EventName.TURN_FAILED}


class MemoryEvents(MemoryBase):
    events_maxlen: int
    _waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]]
    _last_event: tuple[int, int]

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
