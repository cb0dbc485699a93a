"""How the Redis backend lays a session out: packed values, finished turns that carry their
narrative, a stream rebuilt small once no turn is in flight."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

import fakeredis
import pytest
import redis.asyncio as aioredis

from shared.backends import Admission, IdempotencyClaim, RedisBackend
from shared.backends.codec import CLIENT_OPTIONS, unpack
from shared.backends.keys import SessionKeys
from shared.errors import SchemaTooNew
from shared.models import SCHEMA_VERSION, GameState, TurnError, TurnStatus
from shared.settings import Settings
from tests.shared.backends.conftest import new_state, new_turn
from tests.shared.backends.test_contract import _play
from tests.support.redis_server import RedisServer


@pytest.fixture
async def backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend(aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS), session_ttl=600)
    yield backend
    await backend.close()


async def test_values_written_as_plain_json_are_still_read(backend: RedisBackend) -> None:
    state = new_state()
    turn = new_turn(state.session_id)
    keys = SessionKeys(state.session_id)
    # As a version of the service before packing wrote them.
    await backend.client.hset(
        keys.state, mapping={"version": 0, "state": state.model_dump_json(), "owner": "o"}
    )
    await backend.client.hset(keys.turns, turn.turn_id, turn.model_dump_json())
    await backend.client.rpush(keys.inbox, turn.turn_id)
    try:
        assert await backend.get(state.session_id) == state
        assert await backend.get_turn(state.session_id, turn.turn_id) == turn
        head = await backend.head_turn(state.session_id)
        assert head is not None and head.turn_id == turn.turn_id
    finally:
        await backend.delete(state.session_id)


async def test_a_finished_turn_carries_its_narrative(backend: RedisBackend) -> None:
    # Reading a finished turn (long-poll, stream) never reads or decodes the state.
    state = new_state()
    await backend.create(state, owner_hash="o")
    try:
        narrative = "A raven lands on the signpost and stares at you."
        state = await _play(backend, state, narrative)
        turn_id = state.conversation_history[-1].turn_id
        keys = SessionKeys(state.session_id)
        stored_record = await backend.client.hget(keys.turns, turn_id)
        assert stored_record is not None and narrative in unpack(stored_record)
        completed = [e for e in await backend.read_events(state.session_id, "0-0")]
        assert completed[-1].data["result"]["narrative"] == narrative
        await backend.client.hset(keys.state, "state", "not a state: never read")
        record = await backend.get_turn(state.session_id, turn_id)
        assert record is not None and record.status is TurnStatus.COMPLETED
        assert record.result is not None and record.result.narrative == narrative
        events = await backend.read_events(state.session_id, "0-0")
        assert events[-1].data["result"]["narrative"] == narrative
    finally:
        await backend.delete(state.session_id)


async def test_a_record_written_without_its_narrative_is_still_read(
    backend: RedisBackend,
) -> None:
    # As a version of the service before records carried narratives wrote them: the
    # narrative was left to the state's history.
    state = new_state()
    await backend.create(state, owner_hash="o")
    try:
        narrative = "The bell tolls twice."
        state = await _play(backend, state, narrative)
        turn_id = state.conversation_history[-1].turn_id
        keys = SessionKeys(state.session_id)
        document = json.loads(unpack(await backend.client.hget(keys.turns, turn_id) or ""))
        del document["result"]["narrative"]
        await backend.client.hset(keys.turns, turn_id, json.dumps(document))
        record = await backend.get_turn(state.session_id, turn_id)
        assert record is not None and record.result is not None
        assert record.result.narrative == narrative
    finally:
        await backend.delete(state.session_id)


async def test_failed_and_withdrawn_turns_keep_the_deleted_count_true(redis_url: str) -> None:
    backend = RedisBackend(
        aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS), session_ttl=600, events_maxlen=2
    )
    state = new_state()
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(state.session_id)
    error = TurnError(code="step_failed", message="no")

    async def deleted_in_nodes() -> int:
        info = await backend.client.xinfo_stream(keys.events)
        return int(info["entries-added"]) - int(info["length"])

    try:
        for n in range(4):
            state = await _play(backend, state, f"Turn {n}.")
        for _ in range(3):
            doomed = await backend.accept_turn(
                new_turn(state.session_id), max_pending=8, idempotency=None
            )
            running = await backend.start_turn(state.session_id, doomed.turn_id, 1.0, runner="r")
            assert running is not None
            failed = running.model_copy(update={"status": TurnStatus.FAILED, "error": error})
            assert await backend.fail_turn(failed, runner="r")
            assert await backend.client.hget(keys.state, "deleted") == str(await deleted_in_nodes())
            # The attempt's fence is down: its runner can publish no more.
            assert await backend.client.hget(keys.state, "runner") == ""
            withdrawn = await backend.accept_turn(
                new_turn(state.session_id), max_pending=8, idempotency=None
            )
            assert await backend.withdraw_turn(state.session_id, withdrawn.turn_id, error)
            assert await backend.client.hget(keys.state, "deleted") == str(await deleted_in_nodes())
    finally:
        await backend.delete(state.session_id)
        await backend.close()


async def test_failing_or_withdrawing_a_turn_of_a_gone_state_makes_no_state(redis_url: str) -> None:
    """FAIL and WITHDRAW note their count in the state hash only if it is there: a write to a
    missing one would make a session of nothing but counters."""
    backend = RedisBackend(aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS), session_ttl=600)
    state = new_state()
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(state.session_id)
    error = TurnError(code="step_failed", message="no")
    try:
        doomed = await backend.accept_turn(
            new_turn(state.session_id), max_pending=8, idempotency=None
        )
        withdrawn = await backend.accept_turn(
            new_turn(state.session_id), max_pending=8, idempotency=None
        )
        running = await backend.start_turn(state.session_id, doomed.turn_id, 1.0)
        assert running is not None
        await backend.client.delete(keys.state)
        failed = running.model_copy(update={"status": TurnStatus.FAILED, "error": error})
        assert await backend.fail_turn(failed)
        assert await backend.withdraw_turn(state.session_id, withdrawn.turn_id, error)
        assert not await backend.client.exists(keys.state)
    finally:
        await backend.delete(state.session_id)
        await backend.close()


@pytest.mark.parametrize("rebuild_after", [0, 12])
async def test_the_stream_gives_back_the_memory_of_old_events(
    redis_url: str, rebuild_after: int
) -> None:
    backend = RedisBackend(
        aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS),
        session_ttl=600,
        events_rebuild_after=rebuild_after,
    )
    state = new_state()
    await backend.create(state, owner_hash="o")
    try:
        keys = SessionKeys(state.session_id)
        for n in range(5):
            state = await _play(backend, state, f"Turn {n}.")
        small = await backend.client.memory_usage(keys.events)
        deleted_seen = 0
        for n in range(5, 120):
            state = await _play(backend, state, f"Turn {n}.")
            # Readers see exactly the kept events, whenever the stream was last rebuilt.
            assert await backend.client.xlen(keys.events) == min(8, n + 1)
            info = await backend.client.xinfo_stream(keys.events)
            deleted = info["entries-added"] - info["length"]
            assert deleted <= rebuild_after
            # The count the commit keeps in the state hash instead of asking XINFO each turn.
            assert await backend.client.hget(keys.state, "deleted") == str(deleted)
            deleted_seen = max(deleted_seen, deleted)
        assert (deleted_seen > 0) == (rebuild_after > 0)  # deleted in place, then rebuilt
        # Trimming alone would keep up to a whole node (100 entries) of deleted events.
        assert await backend.client.memory_usage(keys.events) <= (small or 0) * 2
        assert 0 < await backend.client.pttl(keys.events) <= 600_000
    finally:
        await backend.delete(state.session_id)
        await backend.close()


async def test_accepting_reloads_its_script_after_the_server_lost_it() -> None:
    # fakeredis: SCRIPT FLUSH is not something to do to a Redis the tests may not own.
    backend = RedisBackend(fakeredis.FakeAsyncRedis(**CLIENT_OPTIONS), session_ttl=600)
    state = new_state()
    await backend.create(state, owner_hash="o")
    await backend.client.script_flush()
    turn = new_turn(state.session_id)
    stored = await backend.accept_turn(turn, max_pending=8, idempotency=None, mark_pending=True)
    assert stored.turn_id == turn.turn_id
    assert await backend.pending_count(state.session_id) == 1
    assert [sid for sid, _ in await backend.stale_pending(turn.accepted_at, 10)] == [
        state.session_id
    ]
    await backend.close()


async def test_a_state_from_a_newer_schema_is_refused_not_mangled(backend: RedisBackend) -> None:
    state = new_state()
    keys = SessionKeys(state.session_id)
    newer = {**state.model_dump(mode="json"), "schema_version": SCHEMA_VERSION + 1}
    await backend.client.hset(
        keys.state, mapping={"version": 0, "state": json.dumps(newer), "owner": "o"}
    )
    try:
        with pytest.raises(SchemaTooNew) as refused:
            await backend.get(state.session_id)
        assert refused.value.session_id == state.session_id
        assert refused.value.found == SCHEMA_VERSION + 1
        with pytest.raises(SchemaTooNew):
            await backend.owned_state(state.session_id, lambda owner: owner == "o")
        # Someone else's token learns nothing, not even that the state is of a newer schema.
        assert await backend.owned_state(state.session_id, lambda owner: False) is None
    finally:
        await backend.delete(state.session_id)


async def _ttls(backend: RedisBackend, keys: SessionKeys) -> dict[str, int]:
    return {
        key: await backend.client.pttl(key)
        for key in keys.all()
        if await backend.client.exists(key)
    }


async def test_keys_a_turn_creates_expire_with_the_rest_of_the_session(
    backend: RedisBackend,
) -> None:
    """Within the slack a turn refreshes no key, but gives the keys it creates (the inbox,
    the idempotency hash) the TTL the others have left; past it, every key is refreshed."""
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(sid)
    try:
        state = await _play(backend, state, "First.")
        claim = IdempotencyClaim(key="k-1", fingerprint="f")
        await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=claim)
        ttls = await _ttls(backend, keys)
        assert {keys.inbox, keys.idempotency, keys.turns, keys.events} <= set(ttls)
        # All within the slack of each other and of the session's TTL: they go together.
        assert max(ttls.values()) - min(ttls.values()) <= backend.session_ttl_slack * 1000
        assert all(0 < ttl <= 600_000 for ttl in ttls.values())
        # A stream that went (as if it expired a moment before the rest) is made again with
        # the others' TTL.
        await backend.client.delete(keys.events)
        await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=None)
        ttls = await _ttls(backend, keys)
        assert keys.events in ttls
        assert max(ttls.values()) - min(ttls.values()) <= backend.session_ttl_slack * 1000
        # Run down past the slack: the next turn refreshes every key to the full TTL.
        for key in ttls:
            await backend.client.pexpire(key, 200_000)
        await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=None)
        assert all(ttl > 590_000 for ttl in (await _ttls(backend, keys)).values())
        # Longer than the session's TTL (a session not played yet lives longer, or the TTL
        # was lowered since): brought down to it.
        for key in ttls:
            await backend.client.pexpire(key, 900_000)
        await backend.accept_turn(new_turn(sid), max_pending=8, idempotency=None)
        assert all(590_000 < ttl <= 600_000 for ttl in (await _ttls(backend, keys)).values())
    finally:
        await backend.delete(sid)


async def test_no_key_of_a_played_session_outlives_it(backend: RedisBackend) -> None:
    """Turns refresh the session's keys when they are accepted, not when they commit: a key
    a commit rebuilt (the compacted event stream) must still carry the session's TTL."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(state.session_id)
    try:
        for n in range(12):
            state = await _play(backend, state, f"Turn {n} passes quietly.")
            for key in keys.all():
                if await backend.client.exists(key):
                    assert 0 < await backend.client.pttl(key) <= 600_000, key
    finally:
        await backend.delete(state.session_id)


async def test_lapsed_admission_tickets_give_their_memory_back(redis_url: str) -> None:
    """Counts leave lapsed tickets out at once; one admission in eight (by the new ticket's
    id) also clears them from the store."""
    backend = RedisBackend(
        aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS),
        session_ttl=600,
        queue=f"test.admission.{uuid.uuid4().hex[:8]}",  # tickets of its own
    )

    async def admit(turn_id: str, now: float) -> None:
        await backend.admit_turn(
            turn_id, "198.51.100.7", now=now, ttl=10, max_total=1000, max_per_client=5
        )

    keys = backend.admission
    try:
        for n in range(5):
            await admit(f"early-{n}a", now=1000.0)  # 'a' (97): not a sweeping admission
        await admit("late-a", now=2000.0)  # the five lapsed: they no longer count...
        assert await backend.client.zcard(keys.turns) == 6  # ...but are still stored
        await admit("late-h", now=2000.0)  # 'h' (104 = 13 × 8): this one sweeps
        assert await backend.client.zcard(keys.turns) == 2
        assert await backend.client.hlen(keys.clients) == 2
    finally:
        for turn_id in ("late-a", "late-h", *(f"early-{n}a" for n in range(5))):
            await backend.release_admission(turn_id, "198.51.100.7")
        await backend.close()


async def test_a_full_store_refuses_a_new_turns_ticket_after_reading_its_state(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Over maxmemory the owner still gets the state, with the ticket refused as an answer
    (so the gateway refuses what is wrong with the turn first); anyone else, nothing; and an
    admission that clears lapsed tickets does not slip in past the limit."""
    server = redis_server_factory()
    backend = RedisBackend(aioredis.Redis.from_url(server.url, **CLIENT_OPTIONS), session_ttl=600)
    state = new_state()
    try:
        await backend.create(state, owner_hash="owner-hash")

        async def admit(hash_: str, turn_id: str) -> tuple[object, Admission] | None:
            return await backend.admit_owned_turn(
                state.session_id,
                hash_,
                turn_id,
                "198.51.100.7",
                now=time.time(),
                ttl=60,
                max_total=100,
                max_per_client=0,
            )

        await admit("owner-hash", "lapsed-h")  # a ticket for the sweeps below to clear
        used = int((await backend.client.info("memory"))["used_memory"])
        await backend.client.config_set("maxmemory-policy", "noeviction")
        await backend.client.config_set("maxmemory", used // 2)
        for turn_id in ("full-a", "full-h"):  # 'h': this admission also sweeps
            admitted = await admit("owner-hash", turn_id)
            assert admitted is not None and admitted[1] is Admission.UNAVAILABLE, turn_id
            assert isinstance(admitted[0], GameState)
            assert await admit("another-hash", turn_id) is None
        assert await backend.client.zscore(backend.admission.turns, "full-h") is None
        await backend.client.config_set("maxmemory", 0)
        admitted = await admit("owner-hash", "room-a")
        assert admitted is not None and admitted[1] is Admission.ADMITTED
    finally:
        await backend.close()


async def test_an_admission_ticket_is_released_in_one_step(redis_url: str) -> None:
    """The release names the ticket's client (the turn's record does): one script, no
    lookup. The ticket -> client entry is still written at admission, for the release of a
    worker of the version before (a rolling upgrade), and goes with the release."""
    backend = RedisBackend(
        aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS),
        session_ttl=600,
        queue=f"test.admission.{uuid.uuid4().hex[:8]}",
    )
    keys = backend.admission
    client = "c0ffee" * 5
    try:
        for turn_id in ("one", "two"):
            await backend.admit_turn(
                turn_id, client, now=time.time(), ttl=60, max_total=10, max_per_client=5
            )
        assert await backend.client.hget(keys.clients, "one") == client
        await backend.release_admission("never-admitted", client)  # loads the script
        sent: list[object] = []
        send = backend.client.execute_command

        async def recorded(*args: object, **options: object) -> object:
            sent.append(args[0])
            return await send(*args, **options)

        backend.client.execute_command = recorded  # type: ignore[method-assign]
        await backend.release_admission("one", client)
        del backend.client.execute_command
        assert sent == ["EVALSHA"]
        assert await backend.client.zrange(keys.turns, 0, -1) == ["two"]
        assert await backend.client.zrange(keys.client(client), 0, -1) == ["two"]
        assert await backend.client.hkeys(keys.clients) == ["two"]
        # Released by a record that names no client: found in the clients hash, and gone
        # from the client's tickets too.
        await backend.release_admission("two", None)
        assert not await backend.client.exists(keys.turns, keys.client(client), keys.clients)
    finally:
        await backend.client.delete(keys.turns, keys.clients, keys.client(client))
        await backend.close()


async def test_pending_turns_clients_survive_unreadable_and_missing_records(
    backend: RedisBackend,
) -> None:
    """A session with such a turn can still be deleted and its other tickets released."""
    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(sid)
    try:
        turns = [new_turn(sid).model_copy(update={"client": f"c-{n}"}) for n in range(3)]
        for turn in turns:
            await backend.accept_turn(turn, max_pending=8, idempotency=None)
        await backend.client.hset(keys.turns, turns[0].turn_id, "\x00z9junk")  # a newer codec's
        await backend.client.hdel(keys.turns, turns[1].turn_id)
        assert await backend.pending_turn_clients(sid) == [
            (turns[0].turn_id, None),
            (turns[1].turn_id, None),
            (turns[2].turn_id, "c-2"),
        ]
    finally:
        await backend.delete(sid)


async def test_a_running_attempts_words_never_make_a_stream_without_a_ttl(
    backend: RedisBackend,
) -> None:
    from shared.errors import LeaseLost, SessionNotFound

    state = new_state()
    sid = state.session_id
    await backend.create(state, owner_hash="o")
    keys = SessionKeys(sid)
    try:
        turn = new_turn(sid)
        await backend.accept_turn(turn, max_pending=8, idempotency=None)
        assert await backend.start_turn(sid, turn.turn_id, 1.0, runner="r1") is not None
        await backend.append_event(sid, "narration.delta", {"text": "a"}, runner="r1")
        assert 0 < await backend.client.pttl(keys.events) <= 600_000
        with pytest.raises(LeaseLost):
            await backend.append_event(sid, "narration.delta", {"text": "b"}, runner="r0")
        await backend.client.delete(keys.events)  # as if it expired a moment before the rest
        with pytest.raises(SessionNotFound):
            await backend.append_event(sid, "narration.delta", {"text": "c"}, runner="r1")
        assert not await backend.client.exists(keys.events)
    finally:
        await backend.delete(sid)


async def test_a_clusters_memory_is_its_fullest_primarys(redis_cluster_url: str) -> None:
    """The operator's gauge watches the node that fills first, not whichever answers first:
    two primaries get a (far, harmless) limit each, and the one nearer its limit is reported."""
    backend = RedisBackend.from_settings(
        Settings(
            redis_url=redis_cluster_url,
            celery_broker_url="redis://127.0.0.1:1",  # never used here
            _env_file=None,  # type: ignore[call-arg]
        )
    )
    assert isinstance(backend.client, aioredis.RedisCluster)
    await backend.client.initialize()  # the nodes are learnt on first use
    primaries = [
        aioredis.Redis(host=node.host, port=node.port) for node in backend.client.get_primaries()
    ]
    roomy, tight = 64 << 30, 8 << 30  # far above what the tests' cluster holds
    before = [(await primary.config_get("maxmemory"))["maxmemory"] for primary in primaries]
    try:
        await primaries[0].config_set("maxmemory", roomy)
        await primaries[1].config_set("maxmemory", tight)
        reported = await backend.memory_usage()
        assert reported is not None
        used, limit = reported
        assert limit == tight and used > 0
    finally:
        for primary, limit in zip(primaries, before, strict=True):
            await primary.config_set("maxmemory", limit)
            await primary.aclose()
        await backend.close()
