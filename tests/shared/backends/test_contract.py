"""The session backend contract, run against memory, fakeredis and a real Redis server."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.backends import (
    Admission,
    IdempotencyClaim,
    InMemoryBackend,
    RedisBackend,
    SessionBackend,
)
from shared.backends.base import TokenTally
from shared.backends.keys import SessionKeys
from shared.errors import (
    IdempotencyKeyReused,
    LeaseLost,
    SessionNotFound,
    TooManyPendingTurns,
    VersionConflict,
)
from shared.models import (
    GameState,
    HistoryEntry,
    TurnError,
    TurnRecord,
    TurnResult,
    TurnStatus,
)
from tests.shared.backends.conftest import Harness, new_state, new_turn


async def test_create_get_exists_delete(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    assert await backend.get(state.session_id) is None
    assert not await backend.exists(state.session_id)
    await backend.create(state, owner_hash="owner")
    loaded = await backend.get(state.session_id)
    assert loaded == state
    assert await backend.exists(state.session_id)
    assert await backend.owner_hash(state.session_id) == "owner"
    with pytest.raises(ValueError):
        await backend.create(state, owner_hash="someone else")
    assert await backend.delete(state.session_id)
    assert not await backend.delete(state.session_id)
    assert await backend.get(state.session_id) is None
    assert await backend.owner_hash(state.session_id) is None


async def test_update_is_compare_and_set(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    changed = state.model_copy(update={"location": "the moon"})
    stored = await backend.update(changed)
    assert stored.version == 1
    assert (await backend.get(state.session_id)) == stored
    with pytest.raises(VersionConflict):
        await backend.update(changed)  # still claims version 0: a stale writer
    with pytest.raises(SessionNotFound):
        await backend.update(new_state())


async def test_accept_queues_in_order_and_bounds_pending(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turns = [new_turn(state.session_id, f"action {i}") for i in range(3)]
    for turn in turns:
        assert await backend.accept_turn(turn, max_pending=3, idempotency=None) == turn
    assert await backend.pending_count(state.session_id) == 3
    head = await backend.head_turn(state.session_id)
    assert head is not None and head.turn_id == turns[0].turn_id
    with pytest.raises(TooManyPendingTurns):
        await backend.accept_turn(new_turn(state.session_id), max_pending=3, idempotency=None)
    with pytest.raises(SessionNotFound):
        await backend.accept_turn(new_turn(new_state().session_id), max_pending=3, idempotency=None)
    events = await backend.read_events(state.session_id, "0")
    assert [(e.event, e.turn_id) for e in events] == [("turn.queued", t.turn_id) for t in turns]


async def test_idempotency_key_returns_the_first_turn(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    claim = IdempotencyClaim(key="retry-1", fingerprint="body-a")
    first = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=claim)
    again = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=claim)
    assert again.turn_id == first.turn_id
    assert await backend.pending_count(state.session_id) == 1
    with pytest.raises(IdempotencyKeyReused):
        await backend.accept_turn(
            new_turn(state.session_id),
            max_pending=8,
            idempotency=IdempotencyClaim("retry-1", "body-b"),
        )


async def test_idempotent_turn_finds_the_earlier_turn_without_accepting(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    claim = IdempotencyClaim(key="retry-2", fingerprint="body-a")
    assert await backend.idempotent_turn(state.session_id, claim) is None
    first = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=claim)
    found = await backend.idempotent_turn(state.session_id, claim)
    assert found is not None and found.turn_id == first.turn_id
    assert await backend.pending_count(state.session_id) == 1
    with pytest.raises(IdempotencyKeyReused):
        await backend.idempotent_turn(state.session_id, IdempotencyClaim("retry-2", "body-b"))
    with pytest.raises(SessionNotFound):
        await backend.idempotent_turn(new_state().session_id, claim)


async def test_start_commit_applies_the_head_once(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    first = new_turn(state.session_id)
    second = new_turn(state.session_id).model_copy(update={"client": "c-2"})
    for turn in (first, second):
        await backend.accept_turn(turn, max_pending=8, idempotency=None)
    assert await backend.pending_turn_clients(state.session_id) == [
        (first.turn_id, first.client),
        (second.turn_id, second.client),
    ]
    assert await backend.start_turn(state.session_id, second.turn_id, 1.0) is None
    running = await backend.start_turn(state.session_id, first.turn_id, 1.0)
    assert running is not None and running.status is TurnStatus.RUNNING
    assert running.attempts == 1

    after = state.model_copy(update={"location": "the tower"})
    done = _completed(running)
    assert (await backend.commit_turn(after, done)).version == 1
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 1 and stored.location == "the tower"
    record = await backend.get_turn(state.session_id, first.turn_id)
    assert record is not None and record.status is TurnStatus.COMPLETED
    head = await backend.head_turn(state.session_id)
    assert head is not None and head.turn_id == second.turn_id
    assert await backend.pending_turn_clients(state.session_id) == [(second.turn_id, "c-2")]
    assert await backend.pending_turn_clients(new_state().session_id) == []

    # The same commit again (a duplicate delivery) and a commit from a stale read both lose.
    with pytest.raises(VersionConflict):
        await backend.commit_turn(after, done)
    with pytest.raises(VersionConflict):
        await backend.commit_turn(stored, done)
    events = await backend.read_events(state.session_id, "0")
    completed = [e for e in events if e.event == "turn.completed"]
    assert len(completed) == 1
    assert completed[0].data["result"]["narrative"] == "n"


def _completed(running: TurnRecord) -> TurnRecord:
    return running.model_copy(
        update={
            "status": TurnStatus.COMPLETED,
            "result": TurnResult(narrative="n", choices=["a"], state_version=1),
        }
    )


async def test_a_commit_by_the_lease_holder_hands_on_the_next_turn_or_the_lease(
    harness: Harness,
) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    first, second = new_turn(sid), new_turn(sid)
    for turn in (first, second):
        await backend.accept_turn(turn, max_pending=8, idempotency=None)
    assert await backend.acquire_lease(sid, "me", 30)
    running = await backend.start_turn(sid, first.turn_id, 1.0, holder="me")
    assert running is not None
    # A turn waits: the lease stays, renewed, and the commit reads the next head.
    committed = await backend.commit_turn(state, _completed(running), lease=("me", 30))
    assert committed.version == 1 and not committed.lease_released
    assert committed.next_turn is not None and committed.next_turn.turn_id == second.turn_id
    assert not await backend.acquire_lease(sid, "someone else", 30)
    running = await backend.start_turn(sid, second.turn_id, 2.0, holder="me")
    assert running is not None
    stored = await backend.get(sid)
    assert stored is not None
    # The inbox is empty: the lease goes in the same step; the next turn's task can take it.
    committed = await backend.commit_turn(stored, _completed(running), lease=("me", 30))
    assert committed.version == 2 and committed.lease_released and committed.next_turn is None
    assert await backend.acquire_lease(sid, "someone else", 30)


async def test_a_claim_takes_the_lease_with_the_head_turn_and_the_state(
    harness: Harness,
) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    empty = await backend.claim_session(sid, "first", 30)
    assert empty is not None and empty.head is None  # the lease, and nothing waiting
    assert await backend.release_lease(sid, "first") == 0
    orphan, turn = new_turn(sid), new_turn(sid)
    for queued in (orphan, turn):
        await backend.accept_turn(queued, max_pending=8, idempotency=None)
    if isinstance(backend, InMemoryBackend):
        backend._sessions[sid].turns.pop(orphan.turn_id)
    else:
        assert isinstance(backend, RedisBackend)
        await backend.client.hdel(SessionKeys(sid).turns, orphan.turn_id)
    claim = await backend.claim_session(sid, "me", 30)
    assert claim is not None and claim.head is not None
    assert claim.head.turn_id == turn.turn_id  # the id without a record was dropped
    assert claim.state == state
    assert await backend.claim_session(sid, "someone else", 30) is None
    # A drain's own lease left behind (its release failed) is taken over at once.
    taken_over = await backend.claim_session(sid, "me again", 30, reclaim="me")
    assert taken_over is not None and taken_over.head == claim.head
    assert not await backend.acquire_lease(sid, "me", 30)


async def test_a_claim_starts_a_head_no_attempt_has_started(harness: Harness) -> None:
    """`claim_session(start=...)`: the first attempt starts with the lease, as `start_turn`
    would (record, fence, event); a head an earlier attempt started is left to the caller."""
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    turn = new_turn(sid)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    claim = await backend.claim_session(sid, "me", 30, start=("me#1", 5.0))
    assert claim is not None and claim.started and claim.head is not None
    running = claim.head
    assert running.turn_id == turn.turn_id and running.status is TurnStatus.RUNNING
    assert running.attempts == 1 and running.started_at == 5.0
    assert running.action == turn.action and running.accepted_at == turn.accepted_at
    assert claim.state == state
    stored = await backend.get_turn(sid, turn.turn_id)
    assert stored is not None and stored.status is TurnStatus.RUNNING and stored.attempts == 1
    started = [e for e in await backend.read_events(sid, "0") if e.event == "turn.started"]
    assert [e.data for e in started] == [{"turn_id": turn.turn_id, "attempt": 1}]
    # The attempt is fenced as start_turn's would be: only its runner appends and commits.
    with pytest.raises(LeaseLost):
        await backend.append_event(sid, "narration.delta", {"turn_id": turn.turn_id}, runner="x")
    await backend.append_event(sid, "narration.delta", {"turn_id": turn.turn_id}, runner="me#1")

    # The worker died: the next claim finds the attempt counted and starts nothing itself.
    again = await backend.claim_session(sid, "next", 30, reclaim="me", start=("next#1", 9.0))
    assert again is not None and not again.started and again.head is not None
    assert again.head.attempts == 1 and again.head.status is TurnStatus.RUNNING
    retry = await backend.start_turn(sid, turn.turn_id, 9.5, head=again.head, runner="next#2")
    assert retry is not None and retry.attempts == 2
    with pytest.raises(LeaseLost):
        await backend.commit_turn(state, _completed(running), runner="me#1")
    assert (await backend.commit_turn(state, _completed(retry), runner="next#2")).version == 1

    # Without `start` the head is only read, however fresh.
    fresh = new_turn(sid)
    await backend.accept_turn(fresh, max_pending=8, idempotency=None)
    await backend.release_lease(sid, "next")
    read_only = await backend.claim_session(sid, "third", 30)
    assert read_only is not None and not read_only.started and read_only.head is not None
    assert read_only.head.status is TurnStatus.QUEUED and read_only.head.attempts == 0
    started = await backend.start_turn(sid, fresh.turn_id, 10.0, runner="third#1")
    assert started is not None and started.attempts == 1
    await backend.release_lease(sid, "third")
    # Started once: a claim now reads it as an earlier attempt's.
    late = await backend.claim_session(sid, "fourth", 30, start=("fourth#1", 11.0))
    assert late is not None and not late.started and late.head is not None
    assert late.head.attempts == 1


async def test_a_claim_asked_again_answers_the_same(harness: Harness) -> None:
    """A client that sends a claim again after losing its reply (a cluster client retries by
    itself) gets the lease and the attempt it started, not a busy lease and a lost attempt."""
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    turn = new_turn(sid)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    first = await backend.claim_session(sid, "me", 30, start=("me#1", 5.0))
    again = await backend.claim_session(sid, "me", 30, start=("me#1", 5.0))
    assert first is not None and again is not None
    assert first.started and again.started
    assert again.head == first.head and again.state == first.state
    assert again.head is not None and again.head.attempts == 1
    started = [e for e in await backend.read_events(sid, "0") if e.event == "turn.started"]
    assert len(started) == 1
    # Another holder still finds it taken.
    assert await backend.claim_session(sid, "you", 30, start=("you#1", 6.0)) is None


# Redis only: the memory backend makes the running record when the turn starts.
@pytest.mark.parametrize("harness", ["fakeredis", "redis", "cluster", "sentinel"], indirect=True)
async def test_no_first_attempt_record_outlives_its_turns_start_or_end(harness: Harness) -> None:
    """Redis keeps each accepted turn's first running record beside it until the turn starts;
    a withdrawn or failed turn, or a queued id whose record is gone, leaves none behind."""
    backend = harness.backend
    assert isinstance(backend, RedisBackend)
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    fields = SessionKeys(sid).turns

    async def ahead() -> list[str]:
        return sorted(str(f) for f in await backend.client.hkeys(fields) if "#" in str(f))

    withdrawn, failed, claimed, started = (new_turn(sid) for _ in range(4))
    for turn in (withdrawn, failed, claimed, started):
        await backend.accept_turn(turn, max_pending=8, idempotency=None)
    assert len(await ahead()) == 4
    assert await backend.withdraw_turn(sid, withdrawn.turn_id, TurnError(code="x", message="y"))
    assert await backend.fail_turn(failed.model_copy(update={"status": TurnStatus.FAILED}))
    claim = await backend.claim_session(sid, "me", 30, start=("me#1", 1.0))
    assert claim is not None and claim.started and claim.head is not None
    assert claim.head.turn_id == claimed.turn_id
    assert await ahead() == [f"{started.turn_id}#s"]
    await backend.commit_turn(state, _completed(claim.head), runner="me#1")
    assert await backend.start_turn(sid, started.turn_id, 2.0, runner="me#2") is not None
    assert await ahead() == []
    # A queued id whose record is gone is dropped with what was made ahead for it.
    await backend.release_lease(sid, "me")
    orphan = new_turn(sid)
    await backend.accept_turn(orphan, max_pending=8, idempotency=None)
    await backend.client.hdel(fields, orphan.turn_id)
    assert await ahead() == [f"{orphan.turn_id}#s"]
    await backend.commit_turn(
        state.model_copy(update={"version": 1}), _completed(started), runner="me#2"
    )
    claim = await backend.claim_session(sid, "you", 30, start=("you#1", 3.0))
    assert claim is not None and claim.head is None
    assert await ahead() == []
    await backend.release_lease(sid, "you")
    # A turn started by a worker of the version before, whose START leaves the record made
    # ahead in place: a claim does not start it again as a first attempt, and drops it.
    stale = new_turn(sid)
    await backend.accept_turn(stale, max_pending=8, idempotency=None)
    await backend.client.hset(SessionKeys(sid).state, "runner", "old-worker#1")
    claim = await backend.claim_session(sid, "they", 30, start=("they#1", 4.0))
    assert claim is not None and not claim.started and claim.head is not None
    assert claim.head.turn_id == stale.turn_id and claim.head.attempts == 0
    assert await ahead() == []


async def test_a_commit_never_touches_a_lease_it_does_not_hold(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    turn = new_turn(sid)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    assert await backend.acquire_lease(sid, "other", 30)
    running = await backend.start_turn(sid, turn.turn_id, 1.0)
    assert running is not None
    committed = await backend.commit_turn(state, _completed(running), lease=("me", 30))
    assert committed.version == 1 and not committed.lease_released
    assert not await backend.acquire_lease(sid, "me", 30)  # still the other holder's
    assert await backend.release_lease(sid, "other") == 0


async def test_a_later_attempt_fences_the_earlier_ones_words_and_commit(
    harness: Harness,
) -> None:
    """Attempt A lost its lease while running; attempt B started the same turn. A's events,
    failure and commit are refused from then on, B's go through, unfenced writers too."""
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turn = new_turn(state.session_id)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    sid = state.session_id
    first = await backend.start_turn(sid, turn.turn_id, 1.0, runner="a")
    assert first is not None
    await backend.append_event(sid, "narration.delta", {"text": "A1"}, runner="a")
    second = await backend.start_turn(sid, turn.turn_id, 2.0, runner="b")
    assert second is not None and second.attempts == 2

    with pytest.raises(LeaseLost):
        await backend.append_event(sid, "narration.delta", {"text": "A2"}, runner="a")
    await backend.append_event(sid, "narration.delta", {"text": "B1"}, runner="b")
    await backend.append_event(sid, "session.note", {})  # not a turn's attempt: never fenced
    failed = first.model_copy(
        update={"status": TurnStatus.FAILED, "error": TurnError(code="x", message="m")}
    )
    with pytest.raises(LeaseLost):
        await backend.fail_turn(failed, runner="a")
    done = second.model_copy(
        update={
            "status": TurnStatus.COMPLETED,
            "result": TurnResult(narrative="n", choices=["a"], state_version=1),
        }
    )
    with pytest.raises(LeaseLost):
        await backend.commit_turn(state, done, runner="a")
    texts = [e.data.get("text") for e in await backend.read_events(sid, "0")]
    assert texts[-2:] == ["B1", None] and "A1" in texts and "A2" not in texts
    assert await backend.pending_count(sid) == 1
    assert (await backend.commit_turn(state, done, runner="b")).version == 1
    # A finished turn's runner can no longer publish either.
    with pytest.raises(LeaseLost):
        await backend.append_event(sid, "narration.delta", {"text": "B2"}, runner="b")
    # An attempt started with no runner fences every runner that came before it.
    later = new_turn(sid)
    await backend.accept_turn(later, max_pending=8, idempotency=None)
    assert await backend.start_turn(sid, later.turn_id, 3.0, runner="c")
    assert await backend.start_turn(sid, later.turn_id, 4.0)
    with pytest.raises(LeaseLost):
        await backend.append_event(sid, "narration.delta", {"text": "C"}, runner="c")


async def test_only_the_lease_holder_starts_an_attempt_when_it_says_so(
    harness: Harness,
) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    turn = new_turn(sid)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    assert await backend.acquire_lease(sid, "holder-b", 30)
    assert await backend.start_turn(sid, turn.turn_id, 1.0, runner="b#1", holder="holder-b")
    # A drain that lost the lease to holder-b cannot supersede its attempt.
    assert await backend.start_turn(sid, turn.turn_id, 2.0, runner="a#1", holder="a") is None
    await backend.append_event(sid, "narration.delta", {"text": "B"}, runner="b#1")
    # Withdrawing the running head turn ends its attempt's right to publish.
    error = TurnError(code="queue_unavailable", message="m")
    assert await backend.withdraw_turn(sid, turn.turn_id, error)
    with pytest.raises(LeaseLost):
        await backend.append_event(sid, "narration.delta", {"text": "B2"}, runner="b#1")


async def test_fail_pops_without_changing_state(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turn = new_turn(state.session_id)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    failed = turn.model_copy(
        update={"status": TurnStatus.FAILED, "error": TurnError(code="x", message="broken")}
    )
    assert await backend.fail_turn(failed)
    assert not await backend.fail_turn(failed)
    assert await backend.pending_count(state.session_id) == 0
    assert (await backend.get(state.session_id)) == state
    events = await backend.read_events(state.session_id, "0")
    assert events[-1].event == "turn.failed"
    assert events[-1].data["error"] == {"code": "x", "message": "broken"}


async def test_withdraw_forgets_the_idempotency_key(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    claim = IdempotencyClaim(key="k", fingerprint="f")
    turn = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=claim)
    error = TurnError(code="queue_unavailable", message="try again")
    assert await backend.withdraw_turn(state.session_id, turn.turn_id, error, idempotency_key="k")
    assert not await backend.withdraw_turn(state.session_id, turn.turn_id, error)
    record = await backend.get_turn(state.session_id, turn.turn_id)
    assert record is not None and record.status is TurnStatus.FAILED
    retried = await backend.accept_turn(
        new_turn(state.session_id), max_pending=8, idempotency=claim
    )
    assert retried.turn_id != turn.turn_id


async def test_old_turn_records_are_pruned(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turns = []
    for _ in range(20):
        turn = new_turn(state.session_id)
        turns.append(turn)
        await backend.accept_turn(turn, max_pending=100, idempotency=None)
        finished = turn.model_copy(
            update={"status": TurnStatus.FAILED, "error": TurnError(code="x", message="y")}
        )
        assert await backend.fail_turn(finished)
    assert await backend.get_turn(state.session_id, turns[0].turn_id) is None
    assert await backend.get_turn(state.session_id, turns[-1].turn_id) is not None


async def test_events_resume_after_an_id_and_wake_a_waiting_reader(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    assert await backend.last_event_id(state.session_id) == "0-0"
    first = await backend.append_event(state.session_id, "narration.delta", {"text": "a"})
    assert await backend.last_event_id(state.session_id) == first

    reader = asyncio.create_task(backend.read_events(state.session_id, first, timeout=10))
    await asyncio.sleep(0.05)
    assert not reader.done()
    second = await backend.append_event(state.session_id, "narration.delta", {"text": "b"})
    woken = await asyncio.wait_for(reader, 10)
    assert [(e.id, e.data["text"]) for e in woken] == [(second, "b")]
    assert [e.id for e in await backend.read_events(state.session_id, "0")] == [first, second]
    assert await backend.read_events(state.session_id, second, timeout=0.1) == []
    with pytest.raises(SessionNotFound):
        await backend.append_event(new_state().session_id, "x", {})


async def test_a_turn_is_read_with_the_stream_position_before_it(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turn = new_turn(state.session_id)
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    owner = "o".__eq__
    cursor, record = await backend.turn_after_cursor(state.session_id, turn.turn_id, owner)
    assert cursor == await backend.last_event_id(state.session_id) != "0-0"  # turn.queued
    assert record is not None and record.turn_id == turn.turn_id
    assert record.status is TurnStatus.QUEUED
    other_turn = new_turn(state.session_id).turn_id
    missing = await backend.turn_after_cursor(state.session_id, other_turn, owner)
    assert missing == (cursor, None)
    # Anyone but the owner, and any missing session, get the same answer.
    with pytest.raises(SessionNotFound):
        await backend.turn_after_cursor(state.session_id, turn.turn_id, "x".__eq__)
    with pytest.raises(SessionNotFound):
        await backend.turn_after_cursor(new_state().session_id, turn.turn_id, owner)


async def test_lease_is_exclusive_until_released(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=None)
    assert await backend.lease_time_left(sid) == 0
    assert await backend.acquire_lease(sid, "a", 10)
    assert 8 < await backend.lease_time_left(sid) <= 10
    assert not await backend.acquire_lease(sid, "b", 10)
    assert await backend.renew_lease(sid, "a", 10)
    assert not await backend.renew_lease(sid, "b", 10)
    assert await backend.release_lease(sid, "b") == 1  # not b's to release; one turn waits
    assert not await backend.acquire_lease(sid, "b", 10)
    assert await backend.release_lease(sid, "a") == 1
    assert await backend.lease_time_left(sid) == 0
    assert await backend.acquire_lease(sid, "b", 10)
    assert await backend.release_lease(new_state().session_id, "b") == 0


async def test_a_dead_process_lease_is_released_by_its_prefix_only(harness: Harness) -> None:
    backend = harness.backend
    sid = new_state().session_id
    assert not await backend.release_orphaned_lease(sid, "node-a/41/")  # nobody holds it
    assert await backend.acquire_lease(sid, "node-a/41/0f3c", 30)
    assert not await backend.release_orphaned_lease(sid, "node-a/4/")
    assert not await backend.release_orphaned_lease(sid, "node-b/41/")
    assert not await backend.release_orphaned_lease(sid, "")
    assert not await backend.acquire_lease(sid, "node-a/42/9e1d", 30)
    assert await backend.release_orphaned_lease(sid, "node-a/41/")
    assert await backend.acquire_lease(sid, "node-a/42/9e1d", 30)


async def test_a_thread_takes_back_a_lease_its_earlier_drain_left(harness: Harness) -> None:
    backend = harness.backend
    sid = new_state().session_id
    claim = backend.claim_session
    assert await claim(sid, "node-a/41/7/first", 30, reclaim="node-a/41/7/x") is not None
    assert await claim(sid, "node-a/41/8/other", 30, reclaim="node-a/41/7/") is None
    assert await claim(sid, "node-a/41/7/second", 30) is None  # no reclaim asked
    assert await claim(sid, "node-a/41/7/second", 30, reclaim="node-a/41/7/first") is not None
    assert not await backend.renew_lease(sid, "node-a/41/7/first", 30)
    assert await backend.renew_lease(sid, "node-a/41/7/second", 30)


async def test_admission_is_counted_per_client_and_in_all(harness: Harness) -> None:
    backend = harness.backend
    if isinstance(backend, RedisBackend):  # tickets earlier tests left on this test server
        await backend.client.delete(backend.admission.turns, backend.admission.clients)
    now = time.time()

    async def admit(turn_id: str, client: str, at: float = now) -> Admission:
        return await backend.admit_turn(
            turn_id, client, now=at, ttl=60, max_total=5, max_per_client=3
        )

    for n in range(3):
        assert await admit(f"flood-{n}", "203.0.113.9") is Admission.ADMITTED
    assert await admit("flood-3", "203.0.113.9") is Admission.CLIENT_BUSY
    assert await admit("honest-0", "198.51.100.1") is Admission.ADMITTED
    assert await admit("honest-1", "198.51.100.2") is Admission.ADMITTED
    # Five in flight: everyone waits now, the flooder included.
    assert await admit("honest-2", "198.51.100.3") is Admission.OVERLOADED
    await backend.release_admission("flood-0", "203.0.113.9")
    await backend.release_admission("flood-0", "203.0.113.9")  # a second one changes nothing
    await backend.release_admission("never-admitted", "203.0.113.9")
    await backend.release_admission("never-admitted", None)
    assert await admit("flood-4", "203.0.113.9") is Admission.ADMITTED
    assert await admit("flood-5", "203.0.113.9") is Admission.OVERLOADED
    # A ticket released without its client (a record that names none) frees its place in all.
    await backend.release_admission("honest-1", None)
    assert await admit("honest-2", "198.51.100.3") is Admission.ADMITTED
    # Tickets nobody released (their gateway or worker died) lapse after their ttl.
    later = now + 61
    assert await admit("honest-3", "198.51.100.3", later) is Admission.ADMITTED
    for n in range(3):
        assert await admit(f"flood-late-{n}", "203.0.113.9", later) is Admission.ADMITTED
    assert await admit("flood-late-3", "203.0.113.9", later) is Admission.CLIENT_BUSY


async def test_a_new_turns_ticket_comes_with_its_owners_state(harness: Harness) -> None:
    """`admit_owned_turn`: the state and a ticket for the owner's token only; anyone else's
    token, or a missing session, takes no ticket."""
    backend = harness.backend
    if isinstance(backend, RedisBackend):
        await backend.client.delete(backend.admission.turns, backend.admission.clients)
    state = new_state()
    await backend.create(state, owner_hash="owner-hash")
    now = time.time()

    async def admit(
        session_id: str, hash_: str, turn_id: str
    ) -> tuple[GameState, Admission] | None:
        return await backend.admit_owned_turn(
            session_id,
            hash_,
            turn_id,
            "198.51.100.7",
            now=now,
            ttl=60,
            max_total=2,
            max_per_client=0,
        )

    admitted = await admit(state.session_id, "owner-hash", "t-owner")
    assert admitted is not None
    read, admission = admitted
    assert read.session_id == state.session_id and read.version == state.version
    assert admission is Admission.ADMITTED
    for _ in range(3):  # no tickets: the owner's next turn is still admitted
        assert await admit(state.session_id, "another-hash", "t-other") is None
        assert await admit("x" * 24, "owner-hash", "t-missing") is None
    admitted = await admit(state.session_id, "owner-hash", "t-second")
    assert admitted is not None and admitted[1] is Admission.ADMITTED
    # Two tickets held: the third is refused, and the owner still gets the state.
    admitted = await admit(state.session_id, "owner-hash", "t-third")
    assert admitted is not None and admitted[1] is Admission.OVERLOADED
    assert admitted[0].session_id == state.session_id
    await backend.release_admission("t-owner", "198.51.100.7")
    admitted = await admit(state.session_id, "owner-hash", "t-again")
    assert admitted is not None and admitted[1] is Admission.ADMITTED


async def test_a_commit_gives_the_turns_ticket_back_in_the_same_step(harness: Harness) -> None:
    """`release_ticket`: once, and only once the commit is made; on a cluster (the tickets'
    slot is not the session's) and for a record that names no client, the caller does it."""
    backend = harness.backend
    if isinstance(backend, RedisBackend):
        await backend.client.delete(backend.admission.turns, backend.admission.clients)
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    now = time.time()

    async def admit(turn_id: str, client: str) -> Admission:
        return await backend.admit_turn(
            turn_id, client, now=now, ttl=60, max_total=1, max_per_client=1
        )

    turn = new_turn(sid).model_copy(update={"client": "c-commit"})
    assert await admit(turn.turn_id, "c-commit") is Admission.ADMITTED
    await backend.accept_turn(turn, max_pending=8, idempotency=None)
    running = await backend.start_turn(sid, turn.turn_id, 1.0)
    assert running is not None
    done = _completed(running)
    stale = state.model_copy(update={"version": 5})
    with pytest.raises(VersionConflict):
        await backend.commit_turn(stale, done, release_ticket=True)
    assert await admit("t-while-held", "c-other") is Admission.OVERLOADED
    committed = await backend.commit_turn(state, done, release_ticket=True)
    assert committed.version == 1
    assert committed.ticket_released is (harness.kind != "cluster")
    if not committed.ticket_released:
        assert await admit("t-still-held", "c-other") is Admission.OVERLOADED
        await backend.release_admission(turn.turn_id, "c-commit")
    # Released in all and for its client: another client's turn and the same client's next.
    assert await admit("t-next", "c-commit") is Admission.ADMITTED

    # A record without a client: its ticket is left to the caller, wherever it is stored.
    anonymous = new_turn(sid)
    await backend.accept_turn(anonymous, max_pending=8, idempotency=None)
    running = await backend.start_turn(sid, anonymous.turn_id, 2.0)
    assert running is not None
    stored = await backend.get(sid)
    assert stored is not None
    committed = await backend.commit_turn(stored, _completed(running), release_ticket=True)
    assert committed.ticket_released is (harness.kind == "memory")


async def test_session_expires_after_ttl_without_writes(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
    await harness.expire(state.session_id)
    assert await backend.get(state.session_id) is None
    assert not await backend.exists(state.session_id)
    assert await backend.pending_count(state.session_id) == 0
    assert await backend.read_events(state.session_id, "0") == []


async def test_a_pending_turn_without_a_record_does_not_block_the_session(
    harness: Harness,
) -> None:
    """Defence in depth: an inbox id whose record vanished is dropped, not spun on."""
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    orphan, real = new_turn(state.session_id), new_turn(state.session_id)
    for turn in (orphan, real):
        await backend.accept_turn(turn, max_pending=8, idempotency=None)
    if isinstance(backend, InMemoryBackend):
        backend._sessions[state.session_id].turns.pop(orphan.turn_id)
    else:
        assert isinstance(backend, RedisBackend)
        await backend.client.hdel(SessionKeys(state.session_id).turns, orphan.turn_id)
    head = await backend.head_turn(state.session_id)
    assert head is not None and head.turn_id == real.turn_id
    assert await backend.pending_count(state.session_id) == 1


async def test_pending_marks_are_settled_only_if_unchanged(harness: Harness) -> None:
    backend = harness.backend
    sid = new_state().session_id
    await backend.mark_pending(sid, 100.25)
    assert (sid, 100.25) in await backend.stale_pending(older_than=200.0, limit=1000)
    assert sid not in dict(await backend.stale_pending(older_than=100.0, limit=1000))
    await backend.mark_pending(sid, 150.5)  # a newer turn arrived meanwhile
    await backend.settle_pending(sid, 100.25)
    assert dict(await backend.stale_pending(older_than=200.0, limit=1000))[sid] == 150.5
    await backend.settle_pending(sid, 150.5)
    assert sid not in dict(await backend.stale_pending(older_than=200.0, limit=1000))


async def test_finished_records_are_kept_beside_every_pending_one(harness: Harness) -> None:
    """TURN_RECORDS_KEPT (16 here) counts finished turns only: a queue of pending turns as
    long as MAX_PENDING_TURNS allows never pushes out a record its client may still poll."""
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    error = TurnError(code="x", message="y")
    finished = []
    for _ in range(3):
        turn = await backend.accept_turn(new_turn(sid), max_pending=64, idempotency=None)
        assert await backend.fail_turn(
            turn.model_copy(update={"status": TurnStatus.FAILED, "error": error})
        )
        finished.append(turn)
    pending = [
        await backend.accept_turn(new_turn(sid), max_pending=64, idempotency=None)
        for _ in range(40)
    ]
    for turn in [*finished, *pending]:
        assert await backend.get_turn(sid, turn.turn_id) is not None, turn.turn_id


async def test_pruning_never_drops_a_pending_turn(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    stuck = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
    error = TurnError(code="queue_unavailable", message="x")
    for _ in range(40):  # many accept-then-withdraw cycles behind a pending head
        turn = await backend.accept_turn(
            new_turn(state.session_id), max_pending=8, idempotency=None
        )
        await backend.withdraw_turn(state.session_id, turn.turn_id, error)
    head = await backend.head_turn(state.session_id)
    assert head is not None and head.turn_id == stuck.turn_id


async def _play(backend: SessionBackend, state: GameState, narrative: str) -> GameState:
    """One turn accepted, started and committed with `narrative` in the new state's history."""
    turn = await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
    running = await backend.start_turn(state.session_id, turn.turn_id, 1.0)
    assert running is not None
    entry = HistoryEntry(turn_id=turn.turn_id, action=turn.action, narrative=narrative)
    after = state.model_copy(update={"conversation_history": [*state.conversation_history, entry]})
    result = TurnResult(narrative=narrative, choices=["a"], state_version=state.version + 1)
    done = running.model_copy(update={"status": TurnStatus.COMPLETED, "result": result})
    await backend.commit_turn(after, done)
    return after.model_copy(update={"version": state.version + 1})


async def test_a_completed_turn_is_read_back_whole(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    state = await _play(backend, state, "The lantern gutters; something moves below.")
    turn_id = state.conversation_history[-1].turn_id
    record = await backend.get_turn(state.session_id, turn_id)
    assert record is not None and record.result is not None
    assert record.result.narrative == "The lantern gutters; something moves below."
    assert record.result.choices == ["a"] and record.result.state_version == 1


async def test_finished_turns_keep_their_final_events_only(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turn, waiting = [
        await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
        for _ in range(2)
    ]
    running = await backend.start_turn(state.session_id, turn.turn_id, 1.0)
    assert running is not None
    for piece in ("The ", "door ", "opens."):
        await backend.append_event(
            state.session_id, "narration.delta", {"turn_id": turn.turn_id, "text": piece}
        )
    in_flight = await backend.read_events(state.session_id, "0")
    assert [e.event for e in in_flight].count("narration.delta") == 3

    entry = HistoryEntry(turn_id=turn.turn_id, action=turn.action, narrative="The door opens.")
    after = state.model_copy(update={"conversation_history": [entry]})
    result = TurnResult(narrative="The door opens.", choices=["a"], state_version=1)
    await backend.commit_turn(
        after, running.model_copy(update={"status": TurnStatus.COMPLETED, "result": result})
    )
    retained = await backend.read_events(state.session_id, "0")
    # The waiting turn's queued event stays; of the finished one, its final event only.
    assert [(e.event, e.data["turn_id"]) for e in retained] == [
        ("turn.queued", waiting.turn_id),
        ("turn.completed", turn.turn_id),
    ]
    assert retained[0].id == in_flight[1].id
    assert retained[-1].data["result"]["narrative"] == "The door opens."
    failed = waiting.model_copy(
        update={"status": TurnStatus.FAILED, "error": TurnError(code="x", message="y")}
    )
    assert await backend.fail_turn(failed)

    state = after.model_copy(update={"version": 1})
    for n in range(10):
        state = await _play(backend, state, f"Turn {n} passes quietly.")
    retained = await backend.read_events(state.session_id, "0")
    assert [e.event for e in retained] == ["turn.completed"] * 8  # the default events_maxlen
    assert [e.data["result"]["narrative"] for e in retained] == [
        f"Turn {n} passes quietly." for n in range(2, 10)
    ]
    # A reader resumes after any retained id, and ids keep growing after a compaction.
    assert await backend.read_events(state.session_id, retained[3].id) == retained[4:]
    later = await backend.append_event(state.session_id, "turn.restarted", {"turn_id": "t"})
    assert [e.id for e in await backend.read_events(state.session_id, retained[-1].id)] == [later]


async def test_reading_the_head_can_renew_the_lease_or_say_it_is_lost(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    turn = await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=None)
    assert await backend.acquire_lease(sid, "a", 10)
    head = await backend.head_turn(sid, lease=("a", 10))
    assert head is not None and head.turn_id == turn.turn_id
    with pytest.raises(LeaseLost):
        await backend.head_turn(sid, lease=("b", 10))
    await backend.release_lease(sid, "a")
    with pytest.raises(LeaseLost):
        await backend.head_turn(sid, lease=("a", 10))
    assert await backend.head_turn(sid) == head  # without a lease: a plain read


async def test_accepting_can_mark_the_session_pending_in_the_same_step(harness: Harness) -> None:
    backend = harness.backend
    state = new_state()
    await backend.create(state, owner_hash="o")
    turn = new_turn(state.session_id)
    await backend.accept_turn(turn, max_pending=8, idempotency=None, mark_pending=True)
    assert await backend.pending_count(state.session_id) == 1
    stale = await backend.stale_pending(turn.accepted_at, 1000)
    assert (state.session_id, turn.accepted_at) in stale
    await backend.settle_pending(state.session_id, turn.accepted_at)
    assert state.session_id not in [sid for sid, _ in await backend.stale_pending(2e9, 1000)]


async def test_sessions_count_as_active_after_a_turn_until_the_window_passes(
    harness: Harness,
) -> None:
    backend = harness.backend
    since = time.time()  # earlier tests on a shared server were active before this
    states = [new_state(seed) for seed in range(2)]
    turns = []
    for state in states:
        await backend.create(state, owner_hash="o")
        for _ in range(2):  # a second turn of the same session is the same active session
            turn = new_turn(state.session_id)
            turns.append(turn)
            await backend.accept_turn(turn, max_pending=8, idempotency=None, mark_pending=True)
    assert await backend.active_sessions(since) == 2
    assert await backend.active_sessions(max(t.accepted_at for t in turns) + 1) == 0


async def test_llm_tokens_are_counted_per_session_and_per_client_per_day(
    harness: Harness,
) -> None:
    backend = harness.backend
    first, second = new_state(1), new_state(2)
    for state in (first, second):
        await backend.create(state, owner_hash="o")
    assert await backend.llm_tokens(first.session_id, "client-a", "20261130") == TokenTally()
    await backend.add_llm_tokens(first.session_id, "client-a", "20261129", 50)
    await backend.add_llm_tokens(first.session_id, "client-a", "20261130", 120)
    await backend.add_llm_tokens(second.session_id, "client-a", "20261130", 30)
    await backend.add_llm_tokens(second.session_id, None, "20261130", 7)  # no client known
    assert await backend.llm_tokens(first.session_id, "client-a", "20261130") == TokenTally(
        session_today=120, session_total=170, client_today=150
    )
    assert await backend.llm_tokens(second.session_id, "client-b", "20261130") == TokenTally(
        session_today=37, session_total=37, client_today=0
    )
    await backend.delete(first.session_id)
    gone = await backend.llm_tokens(first.session_id, "client-a", "20261130")
    assert gone == TokenTally(client_today=150)  # the client's count outlives the session


async def test_the_store_reports_its_memory_and_limit(harness: Harness) -> None:
    used = await harness.backend.memory_usage()
    if harness.kind in ("memory", "fakeredis"):
        # Inside the process: nothing to watch; fakeredis has no INFO, as a store that
        # disabled it: the gauge is then not set, and nothing fails.
        assert used is None
        return
    assert used is not None
    memory, limit = used
    assert memory > 0 and limit >= 0
