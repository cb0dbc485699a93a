"""What bounds the service's load in Redis, across sessions: admission tickets of the turns
in flight, per-client request counts, the LLM tokens a session and a client used, and the
store's own memory use."""

from __future__ import annotations

import hmac
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.backends.base import Admission, TokenTally
from shared.backends.keys import SessionKeys, client_usage_key, rate_limit_key
from shared.backends.redis_base import RedisBase
from shared.backends.redis_documents import state_from
from shared.errors import BackendUnavailable
from shared.models import GameState

__all__ = ["RedisLimits"]


# A client's daily token count outlives its day, so a day that began in another timezone's
# evening is still counted whole.
_CLIENT_USAGE_TTL = 2 * 86400


class RedisLimits(RedisBase):
    # -- rate limits --------------------------------------------------------------------------
    def _ticket(
        self,
        turn_id: str,
        client: str,
        now: float,
        ttl: float,
        max_total: int,
        max_per_client: int,
    ) -> tuple[list[str], list[Any]]:
        """ADMIT's keys and arguments for a new turn's ticket."""
        return (
            self._ticket_keys(client),
            [turn_id, now, now + ttl, max_total, max_per_client, client],
        )

    def _ticket_keys(self, client: str) -> list[str]:
        """A client's ticket's keys, in the order ADMIT and RELEASE_ADMISSION take them."""
        keys = self.admission
        return [keys.turns, keys.clients, keys.client(client)]

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
        keys, args = self._ticket(turn_id, client, now, ttl, max_total, max_per_client)
        return Admission(await self._run("ADMIT", keys, args))

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
        keys, args = self._ticket(turn_id, client, now, ttl, max_total, max_per_client)
        if isinstance(self.client, aioredis.RedisCluster):
            # The session's slot is not the tickets': two round trips.
            state = await self.owned_state(
                session_id, lambda owner: hmac.compare_digest(owner, owner_hash)
            )
            if state is None:
                return None
            try:
                return state, Admission(await self._run("ADMIT", keys, args))
            except BackendUnavailable:
                # Told after the turn's own refusals, as the script tells a full store.
                return state, Admission.UNAVAILABLE
        reply = await self._run(
            "ADMIT", [*keys, SessionKeys(session_id).state], [*args, owner_hash]
        )
        if reply[0] == "missing":
            return None
        admission = Admission(reply[0])
        try:
            return state_from(reply[1]), admission
        except Exception:
            # A state this gateway cannot read (a newer schema, during a rolling upgrade):
            # the ticket goes back now rather than after ADMISSION_TICKET_TTL.
            if admission is Admission.ADMITTED:
                await self.release_admission(turn_id, client)
            raise

    async def release_admission(self, turn_id: str, client: str | None) -> None:
        keys = self.admission
        if client is None:
            # A record that names no client (one accepted before records did) or could not be
            # read: its ticket's client is looked up, a round trip more.
            async with self._guard():
                found = await self.client.hget(keys.clients, turn_id)
            client = found if isinstance(found, str) else None
        ticket = self._ticket_keys(client) if client is not None else [keys.turns, keys.clients]
        await self._run("RELEASE_ADMISSION", ticket, [turn_id])

    def _ticket_keys_beside_session(self, client: str | None) -> list[str]:
        """The keys a session's script (COMMIT) takes to give a turn's ticket back in its own
        step, as RELEASE_ADMISSION would: none on a cluster, where the tickets' slot is not
        the session's, nor for a record that names no client (its ticket's client is looked
        up first)."""
        if client is None or isinstance(self.client, aioredis.RedisCluster):
            return []
        return self._ticket_keys(client)

    async def count_request(self, client: str, window: int) -> tuple[int, float]:
        now = time.time()
        number = int(now // window)
        count = await self._run("COUNT_REQUEST", [rate_limit_key(client, number)], [window])
        return int(count), (number + 1) * window - now

    # -- memory use -------------------------------------------------------------------------
    async def memory_use(self) -> tuple[int, int] | None:
        if isinstance(self.client, aioredis.RedisCluster):
            return None  # each node has its own limit: guard them with their own alerts
        async with self._guard():
            info = await self.client.info("memory")
        limit = int(info.get("maxmemory", 0))
        return (int(info["used_memory"]), limit) if limit else None

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

    # -- LLM token accounting ---------------------------------------------------------------
    async def llm_tokens(self, session_id: str, client: str | None, day: str) -> TokenTally:
        async with self._guard(), self.client.pipeline(transaction=False) as pipe:
            # One round trip (a cluster pipeline asks each node for its own part).
            pipe.hmget(SessionKeys(session_id).usage, [f"day:{day}", "total"])
            if client:
                pipe.get(client_usage_key(client, day))
            replies = await pipe.execute()
        today, total = replies[0]
        by_client = replies[1] if client else None
        return TokenTally(int(today or 0), int(total or 0), int(by_client or 0))

    async def add_llm_tokens(
        self, session_id: str, client: str | None, day: str, tokens: int
    ) -> None:
        usage = SessionKeys(session_id).usage
        async with self._guard():
            # One round trip; the session's slot and the client's may differ: no MULTI across
            # them (a cluster pipeline sends each node its own part).
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hincrby(usage, f"day:{day}", tokens)
                pipe.hincrby(usage, "total", tokens)
                pipe.expire(usage, self.session_ttl)
                if client:
                    key = client_usage_key(client, day)
                    pipe.incrby(key, tokens)
                    pipe.expire(key, _CLIENT_USAGE_TTL)
                await pipe.execute()
