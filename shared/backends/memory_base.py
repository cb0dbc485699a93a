"""What the parts of `InMemoryBackend` share: a session's record, and the members its mixins
use.

`InMemoryBackend` (in `memory`) sets or defines every member of `MemoryBase`; its mixins
(sessions, events, leases, pending marks, limits) subclass `MemoryBase` so that mypy checks
their use of them, and mypy refuses an `InMemoryBackend` that lacks one. State that only one
part uses is declared by that mixin, and set, like the rest, in `InMemoryBackend.__init__`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.models import GameState, SessionEvent, TurnRecord

__all__ = ["MemoryBase", "_Session"]


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


class MemoryBase(Protocol):
    session_ttl: int
    _clock: Callable[[], float]
    # Every method takes it: the eager worker thread and the gateway's loop share the backend.
    _lock: threading.RLock
    _sessions: dict[str, _Session]

    def _drop(self, session_id: str) -> bool:
        """Forget a session, with its lease, pending mark and token tallies."""
        ...

    def _expire(self) -> None:
        """Drop every expired session."""
        ...

    def _live(self, session_id: str) -> _Session | None:
        """The session, unless it is missing or expired (then dropped)."""
        ...

    def _require(self, session_id: str) -> _Session:
        """The live session, or `SessionNotFound`."""
        ...

    def _touch(self, session: _Session) -> None:
        """Push a session's expiry a session TTL away."""
        ...

    def _head(self, session_id: str) -> TurnRecord | None:
        """The oldest pending turn's record; an inbox id whose record is gone is dropped."""
        ...

    def _start(
        self, session_id: str, turn_id: str, now: float, runner: str | None
    ) -> TurnRecord | None:
        """Start an attempt of the head turn `turn_id` (see `SessionBackend.start_turn`)."""
        ...

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord | None:
        """A copy of a turn's record, if the session and the record are still there."""
        ...
