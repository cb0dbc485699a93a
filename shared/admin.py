"""Operator tools over the Redis session store: list, show, delete, export, import, migrate,
and the broker queue's numbers. Used by `portals` (shared/cli.py).

Sessions are found with SCAN (never KEYS): it walks the keyspace in steps without blocking
the server. An export line is one session as JSON: id, version, owner's token hash, the time
it has left to live, and the state (at the current schema). Turn records, events and leases
are not exported: they are short-lived and a restored session does without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
import redis.sentinel

from shared.backends.codec import CLIENT_OPTIONS, STATE, Codec, unpack
from shared.backends.keys import KEY_PREFIX, PENDING_SESSIONS, SessionKeys
from shared.backends.redis_scripts import IMPORT
from shared.ids import is_session_id
from shared.models import GameState
from shared.models.migrations import migrate_state
from shared.redis_urls import cluster_url, sentinel_target

__all__ = ["ImportOutcome", "SessionStore", "connect"]

# The state hash of every session: the prefix, then the id in braces and nothing after.
_STATE_PATTERN = KEY_PREFIX + "{*}"


def connect(url: str) -> redis.Redis | redis.RedisCluster:
    """A client for a standalone Redis, a cluster (`redis+cluster://any-node:port`) or the
    master of a Sentinel service (`redis+sentinel://s1:26379,s2:26379/service`)."""
    cluster = cluster_url(url)
    if cluster is not None:
        return redis.RedisCluster.from_url(cluster, socket_timeout=10, **CLIENT_OPTIONS)
    sentinel = sentinel_target(url)
    if sentinel is not None:
        monitor = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinel.sentinels, sentinel_kwargs={"socket_timeout": 10, **sentinel.sentinel_auth}
        )
        connection: dict[str, Any] = {
            **CLIENT_OPTIONS,
            **sentinel.master_auth,
            "socket_timeout": 10,
            "db": sentinel.db,
            "ssl": sentinel.tls,
        }
        master: redis.Redis = monitor.master_for(  # type: ignore[no-untyped-call]
            sentinel.service, **connection
        )
        return master
    client: redis.Redis = redis.Redis.from_url(url, socket_timeout=10, **CLIENT_OPTIONS)
    return client


@dataclass(frozen=True)
class ImportOutcome:
    written: int = 0
    kept_newer: int = 0


class SessionStore:
    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        default_ttl_ms: int,
        codec: Codec | None = None,
    ) -> None:
        self.client = client
        self.default_ttl_ms = default_ttl_ms
        self.codec = codec or Codec()
        self._import = client.register_script(IMPORT)

    # -- listing ----------------------------------------------------------------------------
    def page(self, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
        """Up to about `count` session ids from `cursor`, and the cursor to continue from (0:
        done). A session may appear on two pages if the keyspace is resized meanwhile."""
        if isinstance(self.client, redis.RedisCluster):
            # One SCAN cursor per node: page through the sorted ids instead.
            every = sorted(self.ids())
            end = cursor + count
            return every[cursor:end], (end if end < len(every) else 0)
        next_cursor, keys = self.client.scan(
            cursor, match=_STATE_PATTERN, count=count, _type="hash"
        )
        return sorted(filter(None, map(_session_id_of, keys))), int(next_cursor)

    def ids(self, batch: int = 500) -> Iterator[str]:
        for key in self.client.scan_iter(match=_STATE_PATTERN, count=batch, _type="hash"):
            session_id = _session_id_of(key)
            if session_id is not None:
                yield session_id

    # -- one session ------------------------------------------------------------------------
    def show(self, session_id: str) -> dict[str, Any] | None:
        keys = SessionKeys(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.state, ["version", "state"])
        pipe.pttl(keys.state)
        pipe.llen(keys.inbox)
        pipe.hlen(keys.turns)
        (version, raw), ttl_ms, pending, records = pipe.execute()
        if raw is None:
            return None
        state = GameState.model_validate(migrate_state(json.loads(unpack(raw))))
        return {
            "session_id": session_id,
            "version": int(version),
            "ttl_seconds": round(ttl_ms / 1000, 1) if ttl_ms >= 0 else None,
            "pending_turns": int(pending),
            "turn_records": int(records),
            "stored_state_bytes": len(raw.encode("utf-8", "surrogateescape")),
            "state": state.model_dump(mode="json"),
        }

    def delete(self, session_id: str) -> bool:
        return bool(self.client.delete(*SessionKeys(session_id).all()))

    # -- export / import --------------------------------------------------------------------
    def export(self, session_id: str) -> dict[str, Any] | None:
        keys = SessionKeys(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.state, ["version", "state", "owner"])
        pipe.pttl(keys.state)
        (version, raw, owner), ttl_ms = pipe.execute()
        if raw is None:
            return None  # expired or deleted since it was listed
        return {
            "session_id": session_id,
            "version": int(version),
            "owner_hash": owner,
            "ttl_ms": ttl_ms if ttl_ms > 0 else None,
            "state": migrate_state(json.loads(unpack(raw))),
        }

    def import_line(self, line: dict[str, Any], *, overwrite: bool = False) -> bool:
        """Write one exported session; False if the store holds the same or a newer version
        of it and `overwrite` is not set."""
        session_id = str(line["session_id"])
        state = GameState.model_validate(migrate_state(dict(line["state"])))
        if state.session_id != session_id:
            raise ValueError(f"line for {session_id} holds the state of {state.session_id}")
        version = int(line["version"])
        ttl_ms = int(line.get("ttl_ms") or self.default_ttl_ms)
        stored = state.model_copy(update={"version": version})
        reply = self._import(
            keys=SessionKeys(session_id).all(),
            args=[
                version,
                self.codec.pack(STATE, stored.model_dump_json()),
                str(line["owner_hash"]),
                ttl_ms,
                "1" if overwrite else "0",
            ],
        )
        return bool(reply[0] == "written")

    def import_lines(self, lines: Iterable[dict[str, Any]], *, overwrite: bool) -> ImportOutcome:
        written = kept = 0
        for line in lines:
            if self.import_line(line, overwrite=overwrite):
                written += 1
            else:
                kept += 1
        return ImportOutcome(written, kept)

    # -- the queue --------------------------------------------------------------------------
    def sessions_waiting(self) -> int:
        return int(self.client.zcard(PENDING_SESSIONS))


def _session_id_of(key: str | bytes) -> str | None:
    inner = (key.decode() if isinstance(key, bytes) else key)[len(KEY_PREFIX) :]
    if not (inner.startswith("{") and inner.endswith("}")):
        return None
    session_id = inner[1:-1]
    return session_id if is_session_id(session_id) else None
