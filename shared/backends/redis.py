"""`RedisBackend`: sessions in Redis, every multi-key step one Lua script.

A `redis.asyncio` client belongs to the event loop that first uses it: build one backend per
loop (the gateway's, or a worker process's loop thread) and never share it across loops.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.backends import redis_scripts as lua
from shared.backends.base import Admission, Claim, Committed, IdempotencyClaim, TokenTally
from shared.backends.codec import CLIENT_OPTIONS, STATE, Codec, unpack
from shared.backends.keys import (
    ACTIVE_SESSIONS,
    DEFAULT_QUEUE,
    AdmissionKeys,
    SessionKeys,
    client_usage_key,
    pending_sessions_key,
    rate_limit_key,
)
from shared.backends.redis_documents import (
    dump_record,
    event_data,
    fill_narrative,
    narrative_elsewhere,
    record_from,
    result_document,
    state_from,
)
from shared.errors import (
    BackendUnavailable,
    IdempotencyKeyReused,
    LeaseLost,
    SessionNotFound,
    TooManyPendingTurns,
    VersionConflict,
)
from shared.models import GameState, SessionEvent, TurnError, TurnRecord, TurnStatus
from shared.redis_urls import cluster_url, sentinel_target
from shared.settings import Settings
from shared.tracing import store_script

__all__ = ["Client", "RedisBackend"]


# HEAD's answer when the lease it was to renew is not held (a record is JSON or packed).
_LEASE_LOST = "lease_lost"

# Refusals of a server that cannot take the command now: out of memory under noeviction, a
# replica after a failover (read-only), a cluster slot moving or down, a server loading its
# data. redis-py raises its own class for most and strips the code from the message; the
# rest keep their code as the message's first word (MISCONF: a failed snapshot; UNBLOCKED: a
# blocked read on a primary that was demoted).
_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    ClusterError,
)
_UNAVAILABLE_REPLIES = {
    "OOM",
    "READONLY",
    "MISCONF",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "NOREPLICAS",
    "UNBLOCKED",
}
# Written by the readiness probe: a store that answers PING may still refuse every write.
_READINESS_KEY = "pocket_portals:readiness"
# A client's daily token count outlives its day, so a day that began in another timezone's
# evening is still counted whole.
_CLIENT_USAGE_TTL = 2 * 86400


# A standalone server (or a Sentinel-managed one, through its URL) or a Redis Cluster.
Client = aioredis.Redis | aioredis.RedisCluster


class RedisBackend:
    def __init__(
        self,
        client: Client,
        *,
        session_ttl: int,
        session_ttl_slack: int = 600,
        events_maxlen: int = 8,
        events_rebuild_after: int = 12,
        turn_records_kept: int = 12,
        max_block: float = 4.0,
        stream_client: Client | None = None,
        codec: Codec | None = None,
        also_close: Sequence[aioredis.Redis] = (),
        queue: str = DEFAULT_QUEUE,
    ) -> None:
        self.client = client
        # What belongs to the workers of one task queue: the admission tickets of the turns
        # sent to it, and the sessions its sweeper may queue again.
        self.admission = AdmissionKeys(queue)
        self.pending_sessions = pending_sessions_key(queue)
        # Clients that only serve the ones above (a Sentinel's connections to its monitors).
        self._also_close = also_close
        self.codec = codec or Codec()
        # Blocking reads (SSE, long-poll) hold a connection while they wait; they get a pool
        # of their own so that many open streams cannot starve turns of connections.
        self.stream_client = stream_client or client
        self.session_ttl = session_ttl
        # Never more than half the TTL: a session must be refreshed long before it expires.
        self.session_ttl_slack = min(session_ttl_slack, session_ttl // 2)
        self.events_maxlen = events_maxlen
        self.events_rebuild_after = events_rebuild_after
        self.turn_records_kept = turn_records_kept
        # A blocking XREAD must return before the socket timeout would cut it off.
        self.max_block = max_block
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(getattr(lua, name)) for name in lua.__all__
        }

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> RedisBackend:
        url = url or settings.redis_url
        options: dict[str, Any] = {
            "session_ttl": settings.redis_session_ttl,
            "session_ttl_slack": settings.redis_session_ttl_slack,
            "events_maxlen": settings.events_maxlen,
            "events_rebuild_after": settings.events_rebuild_after,
            "turn_records_kept": settings.turn_records_kept,
            # A blocking XREAD must return before the socket timeout would cut it off.
            "max_block": max(0.1, settings.redis_socket_timeout * 0.8),
            "codec": Codec.from_settings(settings),
            "queue": settings.celery_queue,
        }
        timeouts = {
            "socket_timeout": settings.redis_socket_timeout,
            "socket_connect_timeout": settings.redis_socket_timeout,
        }
        cluster = cluster_url(url)
        if cluster is not None:
            # Every key of a session carries its id as a hash tag, so each script and
            # pipeline of the backend stays in one slot; the client routes it there.
            client = aioredis.RedisCluster.from_url(
                cluster,
                **CLIENT_OPTIONS,
                **timeouts,
                max_connections=settings.redis_max_connections
                + settings.redis_max_stream_connections,
            )
            return cls(client, **options)

        sentinel = sentinel_target(url)
        if sentinel is not None:
            # The clients ask the Sentinels for the current master on each new connection
            # and drop their connections when a failover demotes it (READONLY).
            monitor = aioredis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                sentinel.sentinels, sentinel_kwargs={**timeouts, **sentinel.sentinel_auth}
            )
            connection: dict[str, Any] = {
                **CLIENT_OPTIONS,
                **timeouts,
                **sentinel.master_auth,
                "db": sentinel.db,
                "ssl": sentinel.tls,
            }

            def master(size: int) -> aioredis.Redis:
                client = monitor.master_for(sentinel.service, **connection, max_connections=size)
                return cast(aioredis.Redis, client)

            return cls(
                master(settings.redis_max_connections),
                stream_client=master(settings.redis_max_stream_connections),
                also_close=monitor.sentinels,
                **options,
            )

        def pool(size: int) -> aioredis.BlockingConnectionPool:
            # Blocking: when every connection is busy, a caller waits up to the socket
            # timeout for one instead of failing at once.
            return aioredis.BlockingConnectionPool.from_url(
                url,
                **CLIENT_OPTIONS,
                **timeouts,
                max_connections=size,
                timeout=settings.redis_socket_timeout,
                health_check_interval=30,
            )

        return cls(
            aioredis.Redis.from_pool(pool(settings.redis_max_connections)),
            stream_client=aioredis.Redis.from_pool(pool(settings.redis_max_stream_connections)),
            **options,
        )

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BackendUnavailable("session store") from exc
        except _UNAVAILABLE_ERRORS as exc:
            raise BackendUnavailable("session store") from exc
        except RedisClusterException as exc:
            # Not RedisErrors: a slot no node serves, or no node reachable at all (its cause
            # is the connection error); anything else (cluster mode off) is a setup bug.
            if isinstance(exc, SlotNotCoveredError) or isinstance(
                exc.__cause__, RedisConnectionError | RedisTimeoutError | OSError
            ):
                raise BackendUnavailable("session store") from exc
            raise
        except ResponseError as exc:
            # An outage to wait out; any other error is a bug and stays one.
            if str(exc).split(" ", 1)[0] in _UNAVAILABLE_REPLIES:
                raise BackendUnavailable("session store") from exc
            raise

    async def _run(
        self,
        name: str,
        keys: list[str],
        args: list[Any],
        *,
        pending_mark: tuple[str, float] | None = None,
    ) -> Any:
        async with self._guard():
            with store_script(name):
                return await self._run_script(name, keys, args, pending_mark)

    async def _run_script(
        self, name: str, keys: list[str], args: list[Any], pending_mark: tuple[str, float] | None
    ) -> Any:
        if pending_mark is None:
            return await self._scripts[name](keys=keys, args=args)
        # The mark goes first, in the same round trip; it lives outside the session's
        # Cluster slot, so it cannot be part of the script. EVALSHA by hand: a Script in
        # a pipeline costs a SCRIPT EXISTS round trip of its own.
        script = self._scripts[name]
        if isinstance(self.client, aioredis.RedisCluster):
            # A cluster pipeline refuses EVALSHA: the marks first, then the script.
            await self.client.zadd(self.pending_sessions, dict([pending_mark]))
            await self.client.zadd(ACTIVE_SESSIONS, dict([pending_mark]), gt=True)
            return await script(keys=keys, args=args)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.pending_sessions, dict([pending_mark]))
        pipe.zadd(ACTIVE_SESSIONS, dict([pending_mark]), gt=True)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            return (await pipe.execute())[-1]
        except NoScriptError:  # a restarted or flushed server: the script loads itself
            return await script(keys=keys, args=args)

    # -- sessions ---------------------------------------------------------------------------
    async def create(self, state: GameState, *, owner_hash: str, ttl: int | None = None) -> None:
        keys = SessionKeys(state.session_id)
        stored = state.model_copy(update={"version": 0})
        created = await self._run(
            "CREATE",
            keys.expiring(),
            [
                self.codec.pack(STATE, stored.model_dump_json()),
                owner_hash,
                ttl or self.session_ttl,
            ],
        )
        if not created:
            raise ValueError(f"session {state.session_id} already exists")

    async def get(self, session_id: str) -> GameState | None:
        async with self._guard():
            raw = await self.client.hget(SessionKeys(session_id).state, "state")
        return None if raw is None else state_from(raw)

    async def update(self, state: GameState) -> GameState:
        keys = SessionKeys(state.session_id)
        new_state = state.model_copy(update={"version": state.version + 1})
        reply = await self._run(
            "UPDATE",
            keys.expiring(),
            [state.version, self.codec.pack(STATE, new_state.model_dump_json()), self.session_ttl],
        )
        self._check_cas(reply, state)
        return new_state

    async def delete(self, session_id: str) -> bool:
        async with self._guard():
            removed = await self.client.delete(*SessionKeys(session_id).all())
        return bool(removed)

    async def exists(self, session_id: str) -> bool:
        async with self._guard():
            return bool(await self.client.exists(SessionKeys(session_id).state))

    async def owned_state(
        self, session_id: str, is_owner: Callable[[str], bool]
    ) -> GameState | None:
        async with self._guard():
            owner, raw = await self.client.hmget(SessionKeys(session_id).state, ["owner", "state"])
        if raw is None or not isinstance(owner, str) or not is_owner(owner):
            return None
        return state_from(raw)

    async def owner_hash(self, session_id: str) -> str | None:
        async with self._guard():
            value = await self.client.hget(SessionKeys(session_id).state, "owner")
        return value if isinstance(value, str) else None

    # -- turns ------------------------------------------------------------------------------
    async def accept_turn(
        self,
        record: TurnRecord,
        *,
        max_pending: int,
        idempotency: IdempotencyClaim | None,
        mark_pending: bool = False,
    ) -> TurnRecord:
        keys = SessionKeys(record.session_id)
        reply = await self._run(
            "ACCEPT",
            keys.expiring(),
            pending_mark=(record.session_id, record.accepted_at) if mark_pending else None,
            args=[
                record.turn_id,
                dump_record(record, self.codec),
                max_pending,
                self.session_ttl,
                self.session_ttl_slack,
                idempotency.key if idempotency else "",
                idempotency.fingerprint if idempotency else "",
                event_data(record),
                self.turn_records_kept,
            ],
        )
        outcome = reply[0]
        if outcome == "missing":
            raise SessionNotFound(record.session_id)
        if outcome == "busy":
            raise TooManyPendingTurns(record.session_id, max_pending)
        if outcome == "reused":
            assert idempotency is not None
            raise IdempotencyKeyReused(record.session_id, idempotency.key)
        if outcome == "duplicate":
            return await self._earlier_turn(record.session_id, reply[1], reply[2])
        return record

    async def idempotent_turn(
        self, session_id: str, idempotency: IdempotencyClaim
    ) -> TurnRecord | None:
        keys = SessionKeys(session_id)
        async with self._guard():
            previous = await self.client.hget(keys.idempotency, idempotency.key)
            if not isinstance(previous, str):
                if not await self.client.exists(keys.state):
                    raise SessionNotFound(session_id)
                return None
            turn_id, _, fingerprint = previous.partition("\n")
            if fingerprint != idempotency.fingerprint:
                raise IdempotencyKeyReused(session_id, idempotency.key)
            raw = await self.client.hget(keys.turns, turn_id)
        return await self._earlier_turn(session_id, turn_id, raw if isinstance(raw, str) else "")

    async def _earlier_turn(self, session_id: str, turn_id: str, raw: str) -> TurnRecord:
        if raw:
            return await self._load_record(session_id, raw)
        # The earlier turn's record was pruned long ago: it certainly finished.
        return TurnRecord(
            turn_id=turn_id,
            session_id=session_id,
            action="",
            accepted_at=0.0,
            status=TurnStatus.COMPLETED,
        )

    async def withdraw_turn(
        self, session_id: str, turn_id: str, error: TurnError, *, idempotency_key: str | None = None
    ) -> bool:
        record = await self.get_turn(session_id, turn_id)
        if record is None:
            return False
        failed = record.model_copy(update={"status": TurnStatus.FAILED, "error": error})
        done = await self._run(
            "WITHDRAW",
            SessionKeys(session_id).expiring(),
            [
                turn_id,
                dump_record(failed, self.codec),
                self.session_ttl,
                self.events_maxlen,
                event_data(failed, error=error.model_dump()),
                idempotency_key or "",
                self.events_rebuild_after,
            ],
        )
        return bool(done)

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord | None:
        keys = SessionKeys(session_id)
        async with self._guard():
            raw = await self.client.hget(keys.turns, turn_id)
        return None if raw is None else await self._load_record(session_id, raw)

    async def head_turn(
        self, session_id: str, *, lease: tuple[str, float] | None = None
    ) -> TurnRecord | None:
        keys = SessionKeys(session_id)
        args = [] if lease is None else [lease[0], int(lease[1] * 1000)]
        raw = await self._run("HEAD", [*keys.expiring(), keys.lease], args)
        if raw == _LEASE_LOST:
            assert lease is not None
            raise LeaseLost(session_id, lease[0])
        return None if raw is None else await self._load_record(session_id, raw)

    async def _load_record(self, session_id: str, raw: str | bytes) -> TurnRecord:
        document = json.loads(unpack(raw))
        state = None
        if narrative_elsewhere(document):
            async with self._guard():
                state = await self.client.hget(SessionKeys(session_id).state, "state")
        return record_from(session_id, document, state)

    async def pending_turns(self, session_id: str) -> list[TurnRecord]:
        keys = SessionKeys(session_id)
        async with self._guard():
            turn_ids = await self.client.lrange(keys.inbox, 0, -1)
            raws = await self.client.hmget(keys.turns, turn_ids) if turn_ids else []
        return [await self._load_record(session_id, raw) for raw in raws if raw is not None]

    async def pending_count(self, session_id: str) -> int:
        async with self._guard():
            return int(await self.client.llen(SessionKeys(session_id).inbox))

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
        # START only applies to the inbox head, so a head record read a moment ago is as
        # good as a fresh read; only a lease holder changes a queued record.
        fresh = head is not None and head.turn_id == turn_id
        record = head if fresh else await self.get_turn(session_id, turn_id)
        if record is None or record.status.finished:
            return None
        running = record.model_copy(
            update={
                "status": TurnStatus.RUNNING,
                "started_at": now,
                "attempts": record.attempts + 1,
            }
        )
        keys = SessionKeys(session_id)
        started = await self._run(
            "START",
            [*keys.expiring(), keys.lease],
            [
                turn_id,
                dump_record(running, self.codec),
                self.session_ttl,
                runner or "",
                event_data(running, attempt=running.attempts),
                holder or "",
            ],
        )
        return running if started else None

    async def commit_turn(
        self,
        state: GameState,
        record: TurnRecord,
        *,
        runner: str | None = None,
        lease: tuple[str, float] | None = None,
    ) -> Committed:
        keys = SessionKeys(state.session_id)
        new_state = state.model_copy(update={"version": state.version + 1})
        holder, ttl_ms = (lease[0], int(lease[1] * 1000)) if lease else ("", 0)
        reply = await self._run(
            "COMMIT",
            [*keys.expiring(), keys.lease],
            [
                state.version,
                record.turn_id,
                self.codec.pack(STATE, new_state.model_dump_json()),
                dump_record(record, self.codec),
                self.session_ttl,
                self.events_maxlen,
                event_data(record, result=result_document(record)),
                runner or "",
                self.events_rebuild_after,
                holder,
                ttl_ms,
            ],
        )
        if reply[0] == "superseded":
            raise LeaseLost(state.session_id, runner or "")
        self._check_cas(reply, state)
        if len(reply) > 2 and reply[2] == "released":
            return Committed(new_state.version, lease_released=True)
        if len(reply) > 3 and reply[2] == "next":
            try:
                next_turn = await self._load_record(state.session_id, reply[3])
            except (ValueError, TypeError):
                # Not this turn's problem: the drain reads the head again and deals with it.
                return Committed(new_state.version)
            return Committed(new_state.version, next_turn=next_turn)
        return Committed(new_state.version)

    async def fail_turn(self, record: TurnRecord, *, runner: str | None = None) -> bool:
        error = record.error.model_dump(mode="json") if record.error else None
        done = await self._run(
            "FAIL",
            SessionKeys(record.session_id).expiring(),
            [
                record.turn_id,
                dump_record(record, self.codec),
                self.session_ttl,
                self.events_maxlen,
                event_data(record, error=error),
                runner or "",
                self.events_rebuild_after,
            ],
        )
        if done == -1:
            raise LeaseLost(record.session_id, runner or "")
        return bool(done)

    @staticmethod
    def _check_cas(reply: list[str], state: GameState) -> None:
        if reply[0] == "missing":
            raise SessionNotFound(state.session_id)
        if reply[0] == "conflict":
            raise VersionConflict(state.session_id, state.version)

    # -- events -----------------------------------------------------------------------------
    async def append_event(
        self, session_id: str, event: str, data: dict[str, Any], *, runner: str | None = None
    ) -> str:
        event_id = await self._run(
            "APPEND_EVENT",
            SessionKeys(session_id).expiring(),
            [runner or "", event, json.dumps(data, separators=(",", ":"))],
        )
        if event_id is None:
            raise SessionNotFound(session_id)
        if isinstance(event_id, list):
            raise LeaseLost(session_id, runner or "")
        return str(event_id)

    async def read_events(
        self, session_id: str, after: str, *, timeout: float = 0.0, count: int = 100
    ) -> list[SessionEvent]:
        key = SessionKeys(session_id).events
        block = int(min(timeout, self.max_block) * 1000)
        client = self.stream_client if block else self.client
        async with self._guard():
            reply = await client.xread({key: after}, count=count, block=block or None)
        streams = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or [])
        events = [
            SessionEvent(id=entry_id, event=fields["event"], data=json.loads(fields["data"]))
            for _stream, entries in streams
            for entry_id, fields in entries
        ]
        untold = [e.data for e in events if narrative_elsewhere(e.data)]
        if untold:
            async with self._guard():
                state = await self.client.hget(SessionKeys(session_id).state, "state")
            for data in untold:
                fill_narrative(data["result"], data["turn_id"], state)
        return events

    async def turn_after_cursor(
        self, session_id: str, turn_id: str, is_owner: Callable[[str], bool]
    ) -> tuple[str, TurnRecord | None]:
        keys = SessionKeys(session_id)
        async with self._guard():
            # One pipeline, run in order by the server: the cursor is taken first.
            pipe = self.client.pipeline(transaction=False)
            pipe.xrevrange(keys.events, count=1)
            pipe.hget(keys.turns, turn_id)
            pipe.hget(keys.state, "owner")
            entries, raw, owner = await pipe.execute()
        if not isinstance(owner, str) or not is_owner(owner):
            raise SessionNotFound(session_id)
        cursor = str(entries[0][0]) if entries else "0-0"
        return cursor, None if raw is None else await self._load_record(session_id, raw)

    async def last_event_id(self, session_id: str) -> str:
        async with self._guard():
            entries = await self.client.xrevrange(SessionKeys(session_id).events, count=1)
        return str(entries[0][0]) if entries else "0-0"

    # -- processing lease ------------------------------------------------------------------
    async def acquire_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        lease = SessionKeys(session_id).lease
        async with self._guard():
            return bool(await self.client.set(lease, holder, nx=True, px=int(ttl * 1000)))

    async def claim_session(
        self, session_id: str, holder: str, ttl: float, *, reclaim: str = ""
    ) -> Claim | None:
        keys = SessionKeys(session_id)
        reply = await self._run(
            "CLAIM", [*keys.expiring(), keys.lease], [holder, int(ttl * 1000), reclaim]
        )
        if reply is None:
            return None
        if not reply:
            return Claim(head=None, state=None)
        record, state = reply
        return Claim(
            head=await self._load_record(session_id, record),
            state=state_from(state) if state else None,
        )

    async def renew_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        renewed = await self._run(
            "RENEW", [SessionKeys(session_id).lease], [holder, int(ttl * 1000)]
        )
        return bool(renewed)

    async def lease_time_left(self, session_id: str) -> float:
        async with self._guard():
            left_ms = int(await self.client.pttl(SessionKeys(session_id).lease))
        return max(0, left_ms) / 1000

    async def release_lease(self, session_id: str, holder: str) -> int:
        keys = SessionKeys(session_id)
        return int(await self._run("RELEASE", [keys.lease, keys.inbox], [holder]))

    async def release_orphaned_lease(self, session_id: str, owner: str) -> bool:
        if not owner:
            return False
        keys = SessionKeys(session_id)
        return bool(await self._run("RELEASE_ORPHANED", [keys.lease], [owner]))

    # -- sessions with waiting turns ------------------------------------------------------
    async def mark_pending(self, session_id: str, now: float) -> None:
        async with self._guard():
            await self.client.zadd(self.pending_sessions, {SessionKeys(session_id).session_id: now})

    async def active_sessions(self, since: float) -> int:
        async with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(ACTIVE_SESSIONS, "-inf", f"({since}")
            pipe.zcard(ACTIVE_SESSIONS)
            _, count = await pipe.execute()
        return int(count)

    async def memory_usage(self) -> tuple[int, int] | None:
        """Unlike `memory_use` (the admission guard's, one server), every primary of a
        cluster is asked, and the fullest is reported, for the operator's gauge."""
        try:
            async with self._guard():
                if isinstance(self.client, aioredis.RedisCluster):
                    info = await self.client.info(
                        "memory", target_nodes=aioredis.RedisCluster.PRIMARIES
                    )
                else:
                    info = await self.client.info("memory")
        except ResponseError:
            return None  # a store that does not say (INFO renamed or disabled)
        # A cluster answers for each of its nodes: the fullest one is the one to watch.
        nodes = (
            [info] if "used_memory" in info else [v for v in info.values() if isinstance(v, dict)]
        )
        sizes = [(int(n.get("used_memory", 0)), int(n.get("maxmemory", 0))) for n in nodes]
        if not sizes:
            return None
        return max(sizes, key=lambda size: (size[0] / size[1] if size[1] else 0.0, size[0]))

    async def stale_pending(self, older_than: float, limit: int) -> list[tuple[str, float]]:
        async with self._guard():
            rows = await self.client.zrangebyscore(
                self.pending_sessions, "-inf", older_than, start=0, num=limit, withscores=True
            )
        pairs = cast(list[tuple[str, float]], rows)
        return [(str(member), float(score)) for member, score in pairs]

    async def settle_pending(self, session_id: str, marked_at: float) -> None:
        await self._run("SETTLE_PENDING", [self.pending_sessions], [session_id, repr(marked_at)])

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
        keys = self.admission
        answer = await self._run(
            "ADMIT",
            [keys.turns, keys.clients, keys.client(client)],
            [turn_id, now, now + ttl, max_total, max_per_client],
        )
        return Admission(answer)

    async def release_admission(self, turn_id: str, client: str | None) -> None:
        keys = self.admission
        if client is None:
            # Only a ticket admitted before tickets were released by their client (an upgrade
            # ago) is in the clients hash; any other lapses from its client's set by itself.
            async with self._guard():
                found = await self.client.hget(keys.clients, turn_id)
            client = found if isinstance(found, str) else None
        client_tickets = [keys.client(client)] if client is not None else []
        await self._run("RELEASE_ADMISSION", [keys.turns, keys.clients, *client_tickets], [turn_id])

    async def count_request(self, client: str, window: int) -> tuple[int, float]:
        now = time.time()
        number = int(now // window)
        count = await self._run("COUNT_REQUEST", [rate_limit_key(client, number)], [window])
        return int(count), (number + 1) * window - now

    async def memory_use(self) -> tuple[int, int] | None:
        if isinstance(self.client, aioredis.RedisCluster):
            return None  # each node has its own limit: guard them with their own alerts
        async with self._guard():
            info = await self.client.info("memory")
        limit = int(info.get("maxmemory", 0))
        return (int(info["used_memory"]), limit) if limit else None

    # -- LLM token accounting ---------------------------------------------------------------
    async def llm_tokens(self, session_id: str, client: str | None, day: str) -> TokenTally:
        async with self._guard():
            today, total = await self.client.hmget(
                SessionKeys(session_id).usage, [f"day:{day}", "total"]
            )
            by_client = await self.client.get(client_usage_key(client, day)) if client else None
        return TokenTally(int(today or 0), int(total or 0), int(by_client or 0))

    async def add_llm_tokens(
        self, session_id: str, client: str | None, day: str, tokens: int
    ) -> None:
        usage = SessionKeys(session_id).usage
        async with self._guard():
            # The session's slot and the client's may differ: no MULTI across them.
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hincrby(usage, f"day:{day}", tokens)
                pipe.hincrby(usage, "total", tokens)
                pipe.expire(usage, self.session_ttl)
                await pipe.execute()
            if client:
                key = client_usage_key(client, day)
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.incrby(key, tokens)
                    pipe.expire(key, _CLIENT_USAGE_TTL)
                    await pipe.execute()

    # -- lifecycle --------------------------------------------------------------------------
    async def ping(self) -> None:
        """The store answers and takes a write (a few bytes that expire at once)."""
        async with self._guard():
            await self.client.set(_READINESS_KEY, b"1", px=5000)

    async def close(self) -> None:
        await self.client.aclose()
        if self.stream_client is not self.client:
            await self.stream_client.aclose()
        for client in self._also_close:
            await client.aclose()
