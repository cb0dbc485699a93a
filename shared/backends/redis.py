"""`RedisBackend`: sessions in Redis, every multi-key step one Lua script.

A `redis.asyncio` client belongs to the event loop that first uses it: build one backend per
loop (the gateway's, or a worker process's loop thread) and never share it across loops.

Here: its construction, the script runner and a session's turns. The rest is in the mixins
it inherits: sessions (`redis_sessions`), events (`redis_events`), the processing lease
(`redis_leases`), sessions with waiting turns (`redis_pending`), the service-wide limits
(`redis_limits`) and a new turn in one step (`redis_accept`); its clients come from
`redis_clients`, its error mapping from `redis_errors`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from shared.backends import redis_scripts as lua
from shared.backends.base import Committed, IdempotencyClaim
from shared.backends.codec import STATE, Codec, unpack
from shared.backends.keys import (
    ACTIVE_SESSIONS,
    DEFAULT_QUEUE,
    AdmissionKeys,
    SessionKeys,
    pending_sessions_key,
)
from shared.backends.redis_accept import RedisAccept
from shared.backends.redis_base import Client
from shared.backends.redis_clients import clients_from_settings
from shared.backends.redis_documents import (
    dump_record,
    event_data,
    menu_of,
    narrative_elsewhere,
    record_from,
    result_document,
)
from shared.backends.redis_errors import store_guard
from shared.backends.redis_events import RedisEvents
from shared.backends.redis_leases import RedisLeases
from shared.backends.redis_limits import RedisLimits
from shared.backends.redis_pending import RedisPending
from shared.backends.redis_sessions import RedisSessions
from shared.errors import IdempotencyKeyReused, LeaseLost, SessionNotFound, TooManyPendingTurns
from shared.models import GameState, TurnError, TurnRecord, TurnStatus
from shared.settings import Settings
from shared.tracing import store_script

__all__ = ["Client", "RedisBackend"]


# HEAD's answer when the lease it was to renew is not held (a record is JSON or packed).
_LEASE_LOST = "lease_lost"
# Written by the readiness probe: a store that answers PING may still refuse every write.
_READINESS_KEY = "pocket_portals:readiness"


class RedisBackend(RedisSessions, RedisEvents, RedisLeases, RedisPending, RedisLimits, RedisAccept):
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
        clients = clients_from_settings(settings, url)
        return cls(
            clients.client,
            stream_client=clients.stream_client,
            also_close=clients.also_close,
            **options,
        )

    def _guard(self) -> AbstractAsyncContextManager[None]:
        return store_guard()

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
                dump_record(record.next_attempt(None), self.codec),
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

    async def pending_turn_clients(self, session_id: str) -> list[tuple[str, str | None]]:
        keys = SessionKeys(session_id)
        async with self._guard():
            turn_ids = [str(t) for t in await self.client.lrange(keys.inbox, 0, -1)]
            raws = await self.client.hmget(keys.turns, turn_ids) if turn_ids else []
        pending: list[tuple[str, str | None]] = []
        for turn_id, raw in zip(turn_ids, raws, strict=True):
            client = None
            if raw is not None:
                # Only its client is wanted: a record this version cannot read (a newer
                # codec's, mid-upgrade) must not keep the session from being deleted.
                with contextlib.suppress(ValueError, TypeError):
                    client = json.loads(unpack(raw)).get("client")
            pending.append((turn_id, client if isinstance(client, str) else None))
        return pending

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
        running = record.next_attempt(now)
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
        release_ticket: bool = False,
    ) -> Committed:
        keys = SessionKeys(state.session_id)
        new_state = state.model_copy(update={"version": state.version + 1})
        holder, ttl_ms = (lease[0], int(lease[1] * 1000)) if lease else ("", 0)
        ticket = self._ticket_keys_beside_session(record.client) if release_ticket else []
        reply = await self._run(
            "COMMIT",
            [*keys.expiring(), keys.lease, *ticket],
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
                menu_of(new_state),
            ],
        )
        if reply[0] == "superseded":
            raise LeaseLost(state.session_id, runner or "")
        self._check_cas(reply, state)
        released = bool(ticket)
        if len(reply) > 2 and reply[2] == "released":
            return Committed(new_state.version, lease_released=True, ticket_released=released)
        if len(reply) > 3 and reply[2] == "next":
            try:
                next_turn = await self._load_record(state.session_id, reply[3])
            except (ValueError, TypeError):
                # Not this turn's problem: the drain reads the head again and deals with it.
                return Committed(new_state.version, ticket_released=released)
            return Committed(new_state.version, next_turn=next_turn, ticket_released=released)
        return Committed(new_state.version, ticket_released=released)

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
