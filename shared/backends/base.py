"""What a session backend promises: the contract both backends pass the same tests against.

A backend stores, per session: the `GameState` (with its `version`), the owner's token hash,
the inbox of accepted turns in order, a record per turn, the event stream and a short
processing lease. Every method is atomic on its own; `commit_turn` is the one write that makes
a turn visible, and it is a compare-and-set on `version`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from shared.errors import (
    AdventureCompleted,
    BackendUnavailable,
    ChoiceOutOfRange,
    Overloaded,
    TooManyTurnsInFlight,
)
from shared.models import GameState, SessionEvent, TurnError, TurnRecord

__all__ = [
    "EVENTS_CAP",
    "Admission",
    "Claim",
    "Committed",
    "IdempotencyClaim",
    "SessionBackend",
    "NewTurn",
    "TokenTally",
]

# Events a session's stream may hold while turns are in flight (an LLM's narration deltas pile
# up); once none is, it keeps its last `events_maxlen` events, narration deltas left out.
EVENTS_CAP = 1000


@dataclass(frozen=True)
class IdempotencyClaim:
    """An `Idempotency-Key` and a fingerprint of the request body it was sent with."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class Committed:
    """What a commit did, beyond storing the state at `version`. With a lease holder given:
    `lease_released` if the inbox was then empty (the lease went in the same step, so a turn
    accepted right after finds it free), else `next_turn`, the new head's record, read with
    the lease renewed (None if that could not be done in the step: read the head again).
    `ticket_released`: the turn's admission ticket went back in the same step (asked for with
    `release_ticket`); if not, the caller gives it back (`release_admission`)."""

    version: int
    lease_released: bool = False
    next_turn: TurnRecord | None = None
    ticket_released: bool = False


@dataclass(frozen=True)
class Claim:
    """A drain's lease, with what it starts from, read in the same step: the head turn (None:
    the inbox is empty) and the session's state (None: it is gone). `started`: the head's
    first attempt was started in the same step too (asked for with `start`), as `start_turn`
    would, and `head` is its running record."""

    head: TurnRecord | None
    state: GameState | None
    started: bool = False


class Admission(StrEnum):
    ADMITTED = "admitted"
    OVERLOADED = "overloaded"
    CLIENT_BUSY = "client_busy"
    # The store could not take the ticket (out of memory): answered as such by
    # `admit_owned_turn` so that the gateway can first refuse what is wrong with the turn.
    UNAVAILABLE = "unavailable"

    def refuse(self, max_per_client: int) -> None:
        """Raise what a turn refused its ticket is answered with; nothing if admitted."""
        if self is Admission.UNAVAILABLE:
            raise BackendUnavailable("session store")
        if self is Admission.OVERLOADED:
            raise Overloaded(retry_after=5)
        if self is Admission.CLIENT_BUSY:
            raise TooManyTurnsInFlight(max_per_client)


@dataclass(frozen=True)
class NewTurn:
    """A turn as a player sent it, for `accept_owned_turn`. `record` is the turn to queue;
    for a turn by choice (`choice_index`), its `action` is left empty, to be the meaning of
    that choice in the state the player saw. `owner_hash`: the player's token hash. The
    ticket's bounds are `admit_turn`'s; `max_pending` is `accept_turn`'s."""

    record: TurnRecord
    owner_hash: str
    choice_index: int | None
    idempotency: IdempotencyClaim | None
    max_pending: int
    ticket_ttl: float
    max_total: int
    max_per_client: int

    def checked_against(self, state: GameState) -> TurnRecord:
        """The record with what the worker will apply: the player's words, or the meaning of
        the choice they saw (in the rules' own words if an LLM reworded it). Turns queued
        before this one may change the choices: it is the list the player saw that counts.
        Raises `AdventureCompleted`, `ChoiceOutOfRange`."""
        if state.adventure_completed:
            raise AdventureCompleted(state.session_id)
        if self.choice_index is None:
            return self.record
        meanings = state.choice_meanings
        if self.choice_index > len(meanings):
            raise ChoiceOutOfRange(len(meanings))
        return self.record.model_copy(update={"action": meanings[self.choice_index - 1]})


@dataclass(frozen=True)
class TokenTally:
    session_today: int = 0
    session_total: int = 0
    client_today: int = 0


class SessionBackend(Protocol):
    # -- sessions (the original game's interface, plus ownership) -------------------------
    async def create(self, state: GameState, *, owner_hash: str, ttl: int | None = None) -> None:
        """Store a new session at version 0, living `ttl` seconds (default: the session TTL)
        until its first turn. The id must be new."""

    async def get(self, session_id: str) -> GameState | None: ...

    async def update(self, state: GameState) -> GameState:
        """Compare-and-set outside the turn pipeline (admin tools, migrations): stores `state`
        as `version + 1` if the stored version is still `state.version`, else raises
        `VersionConflict`; `SessionNotFound` if it is gone. Refreshes the TTL."""

    async def delete(self, session_id: str) -> bool: ...

    async def exists(self, session_id: str) -> bool: ...

    async def owner_hash(self, session_id: str) -> str | None: ...

    async def owned_state(
        self, session_id: str, is_owner: Callable[[str], bool]
    ) -> GameState | None:
        """The state, read with the owner's token hash in one step, if `is_owner(hash)`; None
        for a missing session and for anyone else (whose answer must not differ: the state
        is not even decoded for them)."""

    # -- turns ------------------------------------------------------------------------------
    async def accept_turn(
        self,
        record: TurnRecord,
        *,
        max_pending: int,
        idempotency: IdempotencyClaim | None,
        mark_pending: bool = False,
    ) -> TurnRecord:
        """Record a queued turn at the back of the session's inbox and emit `turn.queued`.

        Returns the stored record: `record` itself, or the earlier turn when the same
        idempotency key and body were seen before. Raises `SessionNotFound`,
        `TooManyPendingTurns`, `IdempotencyKeyReused`. With `mark_pending`, the session is
        first marked pending (see `mark_pending`) and active as of `record.accepted_at`."""

    async def idempotent_turn(
        self, session_id: str, idempotency: IdempotencyClaim
    ) -> TurnRecord | None:
        """The turn accepted earlier under this idempotency key (with this body), or None if
        the key is new. Raises `IdempotencyKeyReused` when the key came with another body. A
        retry is answered from here even when the session would now refuse a new turn."""

    async def withdraw_turn(
        self, session_id: str, turn_id: str, error: TurnError, *, idempotency_key: str | None = None
    ) -> bool:
        """Take a turn that is still in the inbox out of it and mark it failed, forgetting its
        idempotency key (used when the broker refused the task). False if it already left the
        inbox: then it was applied or failed on its own."""

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord | None: ...

    async def head_turn(
        self, session_id: str, *, lease: tuple[str, float] | None = None
    ) -> TurnRecord | None:
        """The oldest turn not yet applied, or None. With `lease=(holder, ttl)`, also renews
        the holder's lease in the same step, and raises `LeaseLost` if it is not held."""

    async def pending_count(self, session_id: str) -> int: ...

    async def pending_turn_clients(self, session_id: str) -> list[tuple[str, str | None]]:
        """The ids of the session's turns not yet finished, oldest first, each with the
        client its record names (None where it names none, or cannot be read)."""

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
        """Mark the head turn running (counting the attempt) and emit `turn.started`; None if
        `turn_id` is no longer the head (someone else finished it). `head`: its record as the
        caller just read it with `head_turn`, which a backend may use instead of reading it
        again. `runner`: this attempt's fencing token; starting an attempt supersedes every
        earlier one (see `commit_turn`). `holder`: start only while it holds the session's
        lease, so that a drain which lost its lease cannot supersede the one that took it."""

    async def commit_turn(
        self,
        state: GameState,
        record: TurnRecord,
        *,
        runner: str | None = None,
        lease: tuple[str, float] | None = None,
        release_ticket: bool = False,
    ) -> Committed:
        """Atomically, if the stored version is still `state.version` and `record` is the
        head turn: store `state` as the next version, pop the inbox, store the finished
        record, emit `turn.completed`. Raises `VersionConflict` or `SessionNotFound`; with
        `runner`, `LeaseLost` once an attempt other than that runner's has started. With
        `lease=(holder, ttl)` held by the caller, in the same step: release it if no turn
        waits, else renew it and read the next head (see `Committed`). With `release_ticket`,
        the turn's admission ticket (`record.turn_id`, `record.client`) goes back once the
        commit is made, in the same step where the backend can (`Committed.ticket_released`
        says whether it did)."""

    async def fail_turn(self, record: TurnRecord, *, runner: str | None = None) -> bool:
        """Pop the head turn without changing the state, store it failed, emit `turn.failed`.
        With `runner`, fenced as `commit_turn` is."""

    # -- events -----------------------------------------------------------------------------
    async def append_event(
        self, session_id: str, event: str, data: dict[str, Any], *, runner: str | None = None
    ) -> str:
        """Add an event to the session's stream. With `runner`, only while that runner's
        attempt is the turn's latest (else `LeaseLost`): a superseded attempt's words never
        reach the stream after its successor's `turn.started`."""

    async def read_events(
        self, session_id: str, after: str, *, timeout: float = 0.0, count: int = 100
    ) -> list[SessionEvent]:
        """Events with an id greater than `after` ("0" for all retained; `last_event_id()` for
        only what comes next), waiting up to `timeout` seconds when there are none yet."""

    async def last_event_id(self, session_id: str) -> str: ...

    async def turn_after_cursor(
        self, session_id: str, turn_id: str, is_owner: Callable[[str], bool]
    ) -> tuple[str, TurnRecord | None]:
        """`last_event_id`, then `get_turn`, in that order (a long poll's start: a completion
        landing in between is then still seen as an event), with the owner check, in one
        round trip. `SessionNotFound` for a missing session and, alike, for anyone for whom
        `is_owner(hash)` is false (nothing of the session is decoded for them)."""
        ...

    # -- processing lease ------------------------------------------------------------------
    async def acquire_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        """Take the session's lease for `ttl` seconds if nobody holds it."""

    async def claim_session(
        self,
        session_id: str,
        holder: str,
        ttl: float,
        *,
        reclaim: str = "",
        start: tuple[str, float] | None = None,
    ) -> Claim | None:
        """Take the lease as `acquire_lease` does, or over from `reclaim` (a drain of the
        caller's own thread that stopped without releasing it: the store went away mid-drain,
        and it would else hold the session until the lease expires); in the same step, the
        head turn and the state. With `start=(runner, now)`, a head turn no attempt has
        started yet is started too, under that runner token (`Claim.started`); a head an
        earlier attempt started is left for the caller (to count, back off and start). The
        record returned started at `now`; the one Redis stores, made when the turn was
        accepted, says no start time until the turn finishes. Asked again by the holder that
        has the lease, it answers the same (a client that retried after losing the reply).
        None if the lease is taken."""

    async def renew_lease(self, session_id: str, holder: str, ttl: float) -> bool: ...

    async def release_lease(self, session_id: str, holder: str) -> int:
        """Give the lease up (if still held by `holder`); returns how many turns wait."""

    async def release_orphaned_lease(self, session_id: str, owner: str) -> bool:
        """Release the lease if its holder's name starts with `owner`: the prefix of a worker
        process known to be dead, whose lease would otherwise hold the session until it
        expires. A holder that is in fact alive cannot commit once another attempt starts
        (see `start_turn`)."""

    async def lease_time_left(self, session_id: str) -> float:
        """Seconds until the session's lease expires unless renewed; 0 when nobody holds it."""

    # -- sessions with waiting turns (for the sweeper) ----------------------------------------
    async def mark_pending(self, session_id: str, now: float) -> None:
        """Note that the session has a turn waiting, as of `now` (before it is recorded)."""

    async def active_sessions(self, since: float) -> int:
        """Sessions with a turn accepted (with `mark_pending`) at or after `since`; older
        activity is forgotten."""

    async def memory_usage(self) -> tuple[int, int] | None:
        """The store's memory in bytes: (used, limit), the limit 0 when there is none; for a
        store of several servers, the fullest one's. None for a store inside the process."""

    async def stale_pending(self, older_than: float, limit: int) -> list[tuple[str, float]]:
        """Sessions marked pending before `older_than`, with the time of their mark."""

    async def settle_pending(self, session_id: str, marked_at: float) -> None:
        """Forget the mark if it is still the one from `marked_at` (no newer turn since)."""

    # -- admission (shared by every gateway process) -----------------------------------------
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
        """Take an admission ticket for a new turn, atomically: refused (`OVERLOADED`) when
        `max_total` turns are in flight across the service, or (`CLIENT_BUSY`) when `client`
        (the client's digest, as `TurnRecord.client` holds it) already has `max_per_client`
        (0: no limit). A ticket not released lapses after `ttl` seconds, so tickets of
        processes that died never pile up."""

    async def accept_owned_turn(self, turn: NewTurn) -> TurnRecord | None:
        """A new turn in one step, where the store can (a standalone or Sentinel-managed Redis,
        for a state written by this release): the owner check, the turn's checks against the
        state, its admission ticket and `accept_turn`'s writes, with the session marked pending.
        Returns the queued record (its action filled in), or an earlier turn sent with the same
        Idempotency-Key; raises as the two steps would answer (`SessionNotFound`,
        `AdventureCompleted`, `ChoiceOutOfRange`, `TooManyPendingTurns`,
        `IdempotencyKeyReused`, `Admission.refuse`'s errors). Nothing is written unless the
        turn is queued. None where it cannot be done in one step: the caller takes the two
        (`admit_owned_turn`, then `accept_turn`)."""

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
        """A new turn's first step: the session's state, if `owner_hash` (the player's token
        hash) is its owner's, and with it the turn's admission ticket, as `admit_turn` would
        answer (`UNAVAILABLE` if the store could not take it). One round trip on a standalone
        or Sentinel-managed Redis. None for a missing session and for anyone else's token:
        no ticket taken, and the answer does not differ (the state is not even decoded). The
        caller gives back (`release_admission`) a ticket whose turn goes no further."""

    async def release_admission(self, turn_id: str, client: str | None) -> None:
        """The turn finished (or was never queued): give its ticket back. `client` is the
        digest it was admitted for (`TurnRecord.client`); None for a record that has none,
        whose ticket is looked up (slower). No ticket, no-op."""

    # -- LLM token accounting (shared by every worker) ----------------------------------------
    async def llm_tokens(self, session_id: str, client: str | None, day: str) -> TokenTally:
        """LLM tokens used: by the session on `day` (UTC `yyyymmdd`) and in all, and by
        `client` (its digest) on `day`, over all its sessions."""

    async def add_llm_tokens(
        self, session_id: str, client: str | None, day: str, tokens: int
    ) -> None:
        """Count a turn's LLM tokens for the session (kept while it lives) and the client
        (kept two days)."""

    # -- rate limits (shared by every gateway process) ---------------------------------------
    async def count_request(self, client: str, window: int) -> tuple[int, float]:
        """Count one request of `client` in the current `window`-second window. Returns the
        count so far in this window and the seconds until it ends."""

    async def memory_use(self) -> tuple[int, int] | None:
        """(bytes used, the store's maxmemory) when the store has a memory limit to guard,
        else None."""

    # -- lifecycle --------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise `BackendUnavailable` when the store does not answer."""

    async def close(self) -> None: ...
