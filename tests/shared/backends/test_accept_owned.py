"""`accept_owned_turn`: a new turn in one step, on every store that can; a Cluster, and a
state an older release wrote, answer None (the gateway takes the two steps)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from shared.backends import Admission, IdempotencyClaim, NewTurn, RedisBackend
from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.keys import SessionKeys
from shared.errors import (
    AdventureCompleted,
    BackendUnavailable,
    ChoiceOutOfRange,
    IdempotencyKeyReused,
    Overloaded,
    SessionNotFound,
    TooManyPendingTurns,
    TooManyTurnsInFlight,
)
from shared.models import GameState, TurnRecord, TurnStatus
from tests.shared.backends.conftest import Harness, new_state, new_turn
from tests.support.redis_server import RedisServer

ONE_STEP = pytest.mark.parametrize(
    "harness", ["memory", "fakeredis", "redis", "sentinel"], indirect=True
)
REDIS_ONE_STEP = pytest.mark.parametrize(
    "harness", ["fakeredis", "redis", "sentinel"], indirect=True
)


def _turn(
    state: GameState,
    *,
    owner: str = "owner",
    action: str = "Look around",
    choice: int | None = None,
    client: str = "c-1",
    key: tuple[str, str] | None = None,
    max_pending: int = 8,
    max_total: int = 100,
    max_per_client: int = 0,
) -> NewTurn:
    record = new_turn(state.session_id, "" if choice is not None else action)
    return NewTurn(
        record=record.model_copy(update={"client": client, "choice_index": choice}),
        owner_hash=owner,
        choice_index=choice,
        idempotency=IdempotencyClaim(*key) if key else None,
        max_pending=max_pending,
        ticket_ttl=60,
        max_total=max_total,
        max_per_client=max_per_client,
    )


async def _clear_tickets(harness: Harness) -> None:
    backend = harness.backend
    if isinstance(backend, RedisBackend):  # tickets earlier tests left on this test server
        await backend.client.delete(backend.admission.turns, backend.admission.clients)


async def _accept(harness: Harness, turn: NewTurn) -> TurnRecord:
    stored = await harness.backend.accept_owned_turn(turn)
    assert stored is not None
    return stored


async def _tickets_held(harness: Harness) -> int:
    """How many admission tickets are held (probed with tickets taken and given back)."""
    bound, taken = 50, []
    while len(taken) < bound:
        turn_id = f"probe-{time.monotonic_ns()}"
        admission = await harness.backend.admit_turn(
            turn_id, "c-probe", now=time.time(), ttl=60, max_total=bound, max_per_client=0
        )
        if admission is not Admission.ADMITTED:
            break
        taken.append(turn_id)
    for turn_id in taken:
        await harness.backend.release_admission(turn_id, "c-probe")
    return bound - len(taken)


@ONE_STEP
async def test_a_new_turn_is_queued_in_one_step_for_its_owner_only(harness: Harness) -> None:
    backend = harness.backend
    await _clear_tickets(harness)
    state = new_state()
    await backend.create(state, owner_hash="owner")
    for stranger in (_turn(state, owner="another"), _turn(new_state())):
        with pytest.raises(SessionNotFound):
            await backend.accept_owned_turn(stranger)
    assert await _tickets_held(harness) == 0  # no ticket for anyone else's token
    turn = _turn(state, action="Open the door")
    stored = await _accept(harness, turn)
    assert stored == turn.record
    head = await backend.head_turn(state.session_id)
    assert head is not None and head.turn_id == stored.turn_id
    assert head.action == "Open the door"
    # Its ticket is held, and the session is marked pending in the same step.
    assert await _tickets_held(harness) == 1
    await backend.release_admission(stored.turn_id, "c-1")
    assert await _tickets_held(harness) == 0
    pending = await backend.stale_pending(stored.accepted_at, 1000)
    assert (state.session_id, stored.accepted_at) in pending


@ONE_STEP
async def test_a_turn_by_choice_is_queued_with_what_the_choice_means(harness: Harness) -> None:
    backend = harness.backend
    await _clear_tickets(harness)
    meaning = 'Sing "Ö du fröhliche" / ☃ \\ back'
    state = new_state().model_copy(
        update={"current_choices": ["Sing", "Leave"], "choice_actions": [meaning, "Leave"]}
    )
    await backend.create(state, owner_hash="owner")
    with pytest.raises(ChoiceOutOfRange) as refused:
        await backend.accept_owned_turn(_turn(state, choice=3))
    assert refused.value.choices == 2
    assert await _tickets_held(harness) == 0
    stored = await _accept(harness, _turn(state, choice=1))
    assert stored.action == meaning and stored.choice_index == 1
    read = await backend.get_turn(state.session_id, stored.turn_id)
    assert read is not None and read.action == meaning and read.choice_index == 1
    # The first attempt the claim starts carries it too.
    claim = await backend.claim_session(state.session_id, "w-1", 5.0, start=("r-1", time.time()))
    assert claim.started and claim.head is not None
    assert claim.head.action == meaning and claim.head.attempts == 1


@ONE_STEP
async def test_refusals_in_one_step_take_no_ticket_and_queue_nothing(harness: Harness) -> None:
    backend = harness.backend
    await _clear_tickets(harness)
    state = new_state()
    await backend.create(state, owner_hash="owner")
    await _accept(harness, _turn(state, client="c-full"))
    with pytest.raises(TooManyPendingTurns):
        await backend.accept_owned_turn(_turn(state, max_pending=1))
    with pytest.raises(TooManyTurnsInFlight):
        await backend.accept_owned_turn(_turn(state, client="c-full", max_per_client=1))
    with pytest.raises(Overloaded):
        await backend.accept_owned_turn(_turn(state, client="c-other", max_total=1))
    assert await backend.pending_count(state.session_id) == 1
    assert await _tickets_held(harness) == 1  # the one queued turn's
    ended = new_state().model_copy(update={"adventure_completed": True})
    await backend.create(ended, owner_hash="owner")
    with pytest.raises(AdventureCompleted):
        await backend.accept_owned_turn(_turn(ended))
    assert await backend.pending_count(ended.session_id) == 0


@ONE_STEP
async def test_a_retry_in_one_step_gets_its_first_turn_back(harness: Harness) -> None:
    backend = harness.backend
    await _clear_tickets(harness)
    state = new_state()
    await backend.create(state, owner_hash="owner")
    first = await _accept(harness, _turn(state, key=("k-1", "f-1")))
    # Sent again: the first turn back, even where a new turn would now be refused.
    for retry in (
        _turn(state, key=("k-1", "f-1")),
        _turn(state, key=("k-1", "f-1"), max_pending=1),
        _turn(state, key=("k-1", "f-1"), choice=9),
        _turn(state, key=("k-1", "f-1"), max_total=1),
    ):
        again = await _accept(harness, retry)
        assert again.turn_id == first.turn_id
    assert await backend.pending_count(state.session_id) == 1
    assert await _tickets_held(harness) == 1  # the first turn's
    with pytest.raises(IdempotencyKeyReused):
        await backend.accept_owned_turn(_turn(state, key=("k-1", "another body")))


@ONE_STEP
async def test_every_state_write_tells_the_one_step_what_it_checks(harness: Harness) -> None:
    """The menu goes with each state written: by an update and by a commit, as at creation."""
    backend = harness.backend
    await _clear_tickets(harness)
    state = new_state()
    await backend.create(state, owner_hash="owner")
    state = await backend.update(state.model_copy(update={"current_choices": ["Only this"]}))
    with pytest.raises(ChoiceOutOfRange):
        await backend.accept_owned_turn(_turn(state, choice=2))
    stored = await _accept(harness, _turn(state, choice=1))
    assert stored.action == "Only this"
    running = await backend.start_turn(state.session_id, stored.turn_id, 1.0)
    assert running is not None
    ended = state.model_copy(update={"adventure_completed": True, "current_choices": []})
    done = running.model_copy(update={"status": TurnStatus.COMPLETED, "finished_at": time.time()})
    await backend.commit_turn(ended, done)
    with pytest.raises(AdventureCompleted):
        await backend.accept_owned_turn(_turn(ended))


@REDIS_ONE_STEP
async def test_a_state_an_older_release_wrote_takes_the_two_steps(harness: Harness) -> None:
    """No menu, or one left from an earlier version (written by a release that did not write
    menus): None, before anything is written."""
    backend = harness.backend
    assert isinstance(backend, RedisBackend)
    await _clear_tickets(harness)
    state = new_state()
    await backend.create(state, owner_hash="owner")
    key = SessionKeys(state.session_id).state
    await backend.client.hincrby(key, "version", 1)  # an older worker's commit
    assert await backend.accept_owned_turn(_turn(state)) is None
    await backend.client.hdel(key, "menu")
    assert await backend.accept_owned_turn(_turn(state)) is None
    assert await backend.pending_count(state.session_id) == 0
    assert await _tickets_held(harness) == 0
    # Anyone else's token is still told apart first: nothing of the state is given away.
    with pytest.raises(SessionNotFound):
        await backend.accept_owned_turn(_turn(state, owner="another"))


@pytest.mark.parametrize("harness", ["cluster"], indirect=True)
async def test_a_cluster_takes_the_two_steps(harness: Harness) -> None:
    state = new_state()
    await harness.backend.create(state, owner_hash="owner")
    assert await harness.backend.accept_owned_turn(_turn(state)) is None
    assert await harness.backend.pending_count(state.session_id) == 0


async def test_a_full_store_refuses_the_turn_only_once_nothing_else_is_wrong(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Over maxmemory the first write (the ticket's) is refused: 503, after every check."""
    server = redis_server_factory()
    backend = RedisBackend(aioredis.Redis.from_url(server.url, **CLIENT_OPTIONS), session_ttl=600)
    try:
        state = new_state()
        await backend.create(state, owner_hash="owner")
        ended = new_state().model_copy(update={"adventure_completed": True})
        await backend.create(ended, owner_hash="owner")
        used = int((await backend.client.info("memory"))["used_memory"])
        await backend.client.config_set("maxmemory-policy", "noeviction")
        await backend.client.config_set("maxmemory", used // 2)
        with pytest.raises(BackendUnavailable):
            await backend.accept_owned_turn(_turn(state))
        with pytest.raises(SessionNotFound):
            await backend.accept_owned_turn(_turn(state, owner="another"))
        with pytest.raises(AdventureCompleted):
            await backend.accept_owned_turn(_turn(ended))
        with pytest.raises(ChoiceOutOfRange):
            await backend.accept_owned_turn(_turn(state, choice=9))
        await backend.client.config_set("maxmemory", 0)
        assert await backend.pending_count(state.session_id) == 0
        assert await backend.accept_owned_turn(_turn(state)) is not None
    finally:
        await backend.close()
