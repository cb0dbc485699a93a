"""The turn pipeline: drain a session's inbox, one turn at a time, in acceptance order.

    lease ─▶ head turn ─▶ mark running ─▶ flow step (thread) ─▶ compare-and-set commit
      ▲                                                                 │
      └──── release, and look at the inbox again (a turn may have come) ◀┘

A turn no attempt has started yet is started by the step that takes the lease (the claim);
one an earlier attempt started (its worker died, or its step failed) is counted, backed off
and started by a step of its own.

The lease only saves work (two workers rarely run the same step); the commit is what makes a
turn apply exactly once: it succeeds only if the state is still at the version the step read
and the turn is still the inbox head. A loser reloads and carries on with whatever is now
at the head. An attempt's parts live beside this module: its step (`worker.step`), events
(`worker.attempt_events`), lease heartbeat (`worker.heartbeat`), LLM token budget
(`worker.budget`) and end, committed or failed (`worker.finish`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from enum import Enum, StrEnum
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link

from shared.backends import SessionBackend
from shared.backends.base import Claim, Committed
from shared.errors import (
    AdventureCompleted,
    BackendUnavailable,
    LeaseLost,
    NarratorUnavailable,
    SessionNotFound,
    VersionConflict,
)
from shared.logs import CORRELATION_ID
from shared.metrics import TURN_QUEUE_WAIT_SECONDS, TURNS_RETRIED
from shared.models import EventName, GameState, TurnRecord
from shared.settings import Settings
from shared.tracing import mark_failed, past_span, span, turn_context
from worker.attempt_events import AttemptEvents
from worker.budget import OFFLINE_BUDGET, settings_for
from worker.finish import commit_attempt, fail_turn, release_admission
from worker.heartbeat import with_heartbeat
from worker.step import StepRunner, run_flow_step

# StepRunner is re-exported: it is the type of TurnPipeline's `step_runner`.
__all__ = ["DrainOutcome", "StepRunner", "TurnPipeline"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STEP_FAILED = "The story could not continue this turn; try another action."


class _Held(Enum):
    """How a drain holding the lease stopped."""

    EMPTY = "empty"  # no turn waits (or the session is gone): release and look once more
    OUT_OF_TIME = "out_of_time"  # the time budget or the lease ran out, turns may wait
    RELEASED = "released"  # the last commit found the inbox empty and released the lease


class _Gone(Enum):
    GONE = "gone"


_GONE = _Gone.GONE
# What applying one attempt came to: the commit, the session gone, or nothing committed.
_Applied = Committed | _Gone | None
# A started attempt: its runner token, its running record and the state it starts from.
_Attempt = tuple[str, TurnRecord, GameState | None]


def _runner_token(holder: str) -> str:
    # One per attempt: a late write of an earlier attempt of the same drain is refused too.
    return f"{holder}#{uuid.uuid4().hex[:12]}"


class DrainOutcome(StrEnum):
    DRAINED = "drained"
    # Another holder has the lease and turns are waiting: try again shortly, because that
    # holder may be dead (its lease then expires) rather than busy.
    LEASE_BUSY = "lease_busy"
    # The drain used its time budget with turns still waiting: continue in a fresh task.
    HANDOFF = "handoff"


class TurnPipeline:
    def __init__(
        self,
        backend: SessionBackend,
        settings: Settings,
        *,
        loop: asyncio.AbstractEventLoop,
        step_runner: StepRunner | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.loop = loop
        self.step_runner = step_runner or run_flow_step
        # Flow steps block (on an LLM for seconds): they run in threads of their own, as many
        # as the process keeps turns in flight. The loop's default executor would cap them at
        # a few per core, whatever the Celery pool's concurrency.
        self._steps = ThreadPoolExecutor(
            max_workers=settings.worker_step_threads, thread_name_prefix="turn-step"
        )
        # (owner, session) -> the holder of a lease a drain could not release (the store
        # went away mid-drain): that owner's next drain of the session takes it over.
        self._unreleased: dict[tuple[str, str], str] = {}

    async def drain(self, session_id: str, *, owner: str = "") -> DrainOutcome:
        """`owner`: the prefix of this drain's lease holder name, which names the process
        and thread (see worker.lost): its parent can release the lease at once if it dies,
        and this thread's next drain of the session takes over a lease this one could not
        release instead of waiting for it to expire."""
        holder = owner + uuid.uuid4().hex
        deadline = time.monotonic() + self.settings.drain_time_budget
        while True:
            left_behind = self._unreleased.pop((owner, session_id), "") if owner else ""
            # The lease, the head turn and the state it starts from, in one step; a head no
            # attempt has started yet is started there too, under this runner token.
            runner = _runner_token(holder)
            claim = await self.backend.claim_session(
                session_id,
                holder,
                self.settings.lease_ttl,
                reclaim=left_behind,
                start=(runner, time.time()),
            )
            if claim is None:
                pending = await self.backend.pending_count(session_id)
                return DrainOutcome.LEASE_BUSY if pending else DrainOutcome.DRAINED
            held = _Held.OUT_OF_TIME
            try:
                held = await self._drain_held(session_id, holder, deadline, claim, runner)
            finally:
                # A turn accepted after our last look but before the release found the lease
                # taken; its own task may have given up, so the release looks once more. (A
                # commit that found the inbox empty released the lease in the same step.)
                waiting = (
                    0 if held is _Held.RELEASED else await self._release(session_id, holder, owner)
                )
            if not waiting:
                return DrainOutcome.DRAINED
            if held is _Held.OUT_OF_TIME:
                return DrainOutcome.HANDOFF

    async def _release(self, session_id: str, holder: str, owner: str) -> int:
        try:
            return await self.backend.release_lease(session_id, holder)
        except BaseException:
            if owner:
                self._unreleased[(owner, session_id)] = holder
            raise

    async def lease_wait(self, session_id: str) -> float:
        """How long a task that found the lease taken waits before it looks again: until
        the lease would expire if its holder died now. A live holder drains that task's
        turn itself (its release counts the turns still waiting), so looking sooner only
        costs broker messages and retries; never less than LEASE_RETRY_DELAY."""
        left = await self.backend.lease_time_left(session_id)
        return max(self.settings.lease_retry_delay, left + 0.05)

    async def _drain_held(
        self, session_id: str, holder: str, deadline: float, claim: Claim, claimed_as: str
    ) -> _Held:
        """Apply head turns while we hold the lease, until the inbox is empty (or the session
        gone), the time budget is spent or the lease lost. The head turn is always tried
        once: a drain that could run out of time before its first turn (a busy machine, a
        short budget) would hand off forever. `claimed_as`: the runner token of the attempt
        the claim started, if it did (`claim.started`)."""
        if claim.head is None:
            return _Held.EMPTY
        # The attempt the claim started, or the next head as the claim or a commit read it
        # (the claim's with its state).
        started: _Attempt | None = (claimed_as, claim.head, claim.state) if claim.started else None
        known_head = None if claim.started else claim.head
        known_state = None if claim.started else claim.state
        tried_one = False
        while True:
            head, known_head = known_head, None
            state_read, known_state = known_state, None
            if started is None:
                next_up = await self._next_attempt(
                    session_id, holder, head, state_read, deadline if tried_one else None
                )
                if isinstance(next_up, _Held):
                    return next_up
                started = next_up
            tried_one = True
            if started is None:
                continue  # failed for good, or no longer the head
            applied = await self._start_and_apply(session_id, holder, *started)
            started = None
            if applied is _GONE:
                return _Held.EMPTY
            if isinstance(applied, Committed):
                if applied.lease_released:
                    return _Held.RELEASED
                known_head = applied.next_turn

    async def _next_attempt(
        self,
        session_id: str,
        holder: str,
        head: TurnRecord | None,
        state: GameState | None,
        deadline: float | None,
    ) -> _Attempt | _Held | None:
        """Start an attempt of the head turn (`head` as just read, else read here): the
        attempt, or how the drain stops (no head, the lease lost, past `deadline`), or None
        when there is nothing to run this time round (the turn was failed for good, or is no
        longer the head)."""
        if head is None:
            # A holder that stalled past its lease must not start another turn: another
            # worker may have taken over (its commits would still be refused, but the LLM
            # call and the attempt count would be wasted). The lease is renewed as the head
            # is read (or as the claim or the commit before read it), in one step.
            try:
                head = await self.backend.head_turn(
                    session_id, lease=(holder, self.settings.lease_ttl)
                )
            except LeaseLost:
                logger.warning("lease lost between turns", extra={"session_id": session_id})
                return _Held.OUT_OF_TIME
        if head is None:
            return _Held.EMPTY
        if deadline is not None and time.monotonic() > deadline:
            return _Held.OUT_OF_TIME
        if head.attempts >= self.settings.turn_max_attempts:
            # Every attempt died with its worker (a crash leaves no other trace).
            await fail_turn(
                self.backend,
                head,
                "turn_abandoned",
                "This turn could not be completed; please try again.",
                runner=None,  # no attempt of ours ran: the lease is what guards this
            )
            return None
        if head.attempts:
            await with_heartbeat(
                self.backend,
                self.settings,
                session_id,
                holder,
                asyncio.sleep(self._backoff(head)),
            )
        runner, running, read = await self._start(session_id, holder, head, state)
        return None if running is None else (runner, running, read)

    async def _start(
        self, session_id: str, holder: str, head: TurnRecord, state: GameState | None
    ) -> tuple[str, TurnRecord | None, GameState | None]:
        """Mark the head running under a new attempt's fencing token: (token, the running
        record or None if it is no longer the head, the state the step starts from). The
        state came with the claim, or is read alongside (its own round trip, at the same
        time); the commit's version check makes the order of the two, and a backoff in
        between, irrelevant. Each attempt has a token of its own: a late write of an earlier
        attempt of this same drain (a timed-out append still in flight) is refused too."""
        runner = _runner_token(holder)
        start = self.backend.start_turn(
            session_id, head.turn_id, time.time(), head=head, runner=runner, holder=holder
        )
        if state is not None:
            return runner, await start, state
        running, read = await asyncio.gather(start, self.backend.get(session_id))
        return runner, running, read

    async def _start_and_apply(
        self,
        session_id: str,
        holder: str,
        runner: str,
        running: TurnRecord,
        state: GameState | None,
    ) -> _Applied:
        """A started attempt, run and committed in the turn's own trace (traces on): see
        `shared.tracing`. Its lines (the step thread's too: it copies the context) carry the
        request id that accepted the turn."""
        correlation = CORRELATION_ID.set(running.correlation_id)
        task = trace.get_current_span().get_span_context()
        try:
            with (
                turn_context(running.traceparent),
                span(
                    "turn",
                    attributes={
                        "pocket_portals.session_id": session_id,
                        "pocket_portals.turn_id": running.turn_id,
                        "pocket_portals.attempt": running.attempts,
                    },
                    links=[Link(task)] if task.is_valid else (),
                ) as turn,
            ):
                if running.attempts == 1 and running.started_at is not None:
                    past_span("turn.queue_wait", running.accepted_at, running.started_at)
                if (
                    running.started_at is not None
                    and turn.get_span_context().trace_id != task.trace_id
                ):
                    # The store's spans for this attempt's start (and the claim, or the
                    # commit that handed the lease on) are in the task's trace: drawn again
                    # in the turn's when the task is not the turn's own (the sweeper's
                    # re-queue, or a turn drained after another).
                    past_span("turn.start", running.started_at, time.time())
                return await self._run_attempt(session_id, holder, runner, running, state)
        finally:
            CORRELATION_ID.reset(correlation)

    async def _run_attempt(
        self,
        session_id: str,
        holder: str,
        runner: str,
        running: TurnRecord,
        state: GameState | None,
    ) -> _Applied:
        """Log and count the attempt's start, then run and commit it."""
        if running.attempts > 1:
            TURNS_RETRIED.inc()
        elif running.started_at is not None:
            TURN_QUEUE_WAIT_SECONDS.observe(max(0.0, running.started_at - running.accepted_at))
        logger.info(
            "turn %s started in pid %d (attempt %d)",
            running.turn_id,
            os.getpid(),
            running.attempts,
            extra={"session_id": session_id, "turn_id": running.turn_id},
        )
        stream = AttemptEvents(self.backend, self.settings, self.loop, running, runner)
        if running.attempts > 1:
            # Whatever a client saw of an earlier attempt's narration is void.
            await stream.send(
                EventName.TURN_RESTARTED, {"reason": "redelivered", "attempt": running.attempts}
            )
        return await self._apply(session_id, holder, running, state, stream)

    def close(self) -> None:
        """Let the step threads go once they are idle (a running step still finishes)."""
        self._steps.shutdown(wait=False)

    def _in_step_thread(self, func: Callable[..., T], *args: object) -> Awaitable[T]:
        # As asyncio.to_thread does: the step sees this task's context variables (the log
        # correlation ids), in a thread of the step pool.
        context = contextvars.copy_context()
        return self.loop.run_in_executor(self._steps, functools.partial(context.run, func, *args))

    def _backoff(self, turn: TurnRecord) -> float:
        # Exponential, but short of the lease: a retry must not cost the session its lease.
        delay = self.settings.turn_retry_backoff * 2 ** (turn.attempts - 1)
        return float(min(delay, self.settings.lease_ttl / 2))

    async def _apply(
        self,
        session_id: str,
        holder: str,
        running: TurnRecord,
        state: GameState | None,
        stream: AttemptEvents,
    ) -> _Applied:
        """Run and commit one attempt of the head turn: what the commit did, `_GONE` if the
        session is gone, None if the turn was not committed (failed, or to be tried again)."""
        ids = {"session_id": session_id, "turn_id": running.turn_id}
        prefetched = [state]

        def load_state(sid: str) -> GameState | None:
            # The state read with the start, once; any later load reads it again.
            return prefetched.pop() if prefetched and sid == session_id else self._load_state(sid)

        try:
            settings = await settings_for(self.backend, self.settings, running)
            trace.get_current_span().set_attribute("pocket_portals.narrator", settings.narrator)
            step = await with_heartbeat(
                self.backend,
                self.settings,
                session_id,
                holder,
                self._in_step_thread(
                    self.step_runner, session_id, running, load_state, settings, stream
                ),
            )
            if settings is not self.settings:
                step = replace(step, narrator=OFFLINE_BUDGET)
            await stream.flush()
        except SessionNotFound as exc:
            mark_failed(exc)
            await release_admission(self.backend, running)  # deleted or expired: it never finishes
            return _GONE
        except (AdventureCompleted, NarratorUnavailable) as exc:
            mark_failed(exc)
            await fail_turn(self.backend, running, exc.code, exc.message, runner=stream.runner)
            return None
        except BackendUnavailable:
            raise  # the store is down: the task retries later, the turn stays at the head
        except Exception as exc:
            mark_failed(exc)
            logger.exception("turn step failed (attempt %d)", running.attempts, extra=ids)
            if running.attempts >= self.settings.turn_max_attempts:
                await fail_turn(
                    self.backend, running, "step_failed", _STEP_FAILED, runner=stream.runner
                )
            return None  # otherwise it stays at the head and is tried again after a backoff
        try:
            # Traced by the store's spans for its COMMIT (and admission) scripts.
            return await commit_attempt(
                self.backend, self.settings, step, running, stream.runner, holder
            )
        except VersionConflict as exc:
            mark_failed(exc)
            logger.info("commit lost a race; reloading", extra=ids)
        except LeaseLost as exc:
            mark_failed(exc)
            # Another attempt started after ours: it alone may commit (and its stream holds
            # only its own words). The next head read finds our lease gone and stops.
            logger.warning(
                "commit refused: this attempt was superseded (another ran or runs)", extra=ids
            )
        except SessionNotFound as exc:
            mark_failed(exc)
            await release_admission(self.backend, running)
            return _GONE
        except (ValueError, TypeError) as exc:
            mark_failed(exc)
            # The result cannot be encoded (UnicodeEncodeError is a ValueError): every further
            # attempt would fail the same way, holding up the turns behind it.
            logger.exception("turn result could not be stored", extra=ids)
            await fail_turn(
                self.backend, running, "step_failed", _STEP_FAILED, runner=stream.runner
            )
        return None

    def _load_state(self, session_id: str) -> GameState | None:
        """Called by the flow's persistence from the step's thread."""
        future = asyncio.run_coroutine_threadsafe(self.backend.get(session_id), self.loop)
        return future.result(timeout=self.settings.redis_socket_timeout * 2)
