"""Operator tools over the Redis session store: list, show, delete, export, import, migrate,
and the broker queue's numbers. Used by `portals` (shared/cli.py).

Sessions are found with SCAN (never KEYS): it walks the keyspace in steps without blocking
the server. An export line is one session as JSON: id, version, owner's token hash, the time
it has left to live, and the state (at the current schema). Turn records, events and leases
are not exported: they are short-lived and a restored session does without them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
import redis.sentinel

from shared.backends.codec import STATE, Codec, unpack
from shared.backends.keys import DEFAULT_QUEUE, KEY_PREFIX, SessionKeys, pending_sessions_key
from shared.backends.redis_documents import menu_of
from shared.backends.redis_scripts import IMPORT
from shared.backends.sync_client import connect
from shared.errors import PortalsError
from shared.ids import is_session_id
from shared.models import GameState
from shared.models.migrations import migrate_state

__all__ = ["ImportOutcome", "SessionStore", "connect"]

# The state hash of every session: the prefix, then the id in braces and nothing after.
_STATE_PATTERN = KEY_PREFIX + "{*}"
# A cluster's listing cursor holds the node's own SCAN cursor and which node it is on:
# node cursor * _NODE_SLOTS + node index (primaries in name order).
_NODE_SLOTS = 1024


@dataclass(frozen=True)
class ImportOutcome:
    written: int = 0
    kept_newer: int = 0
    failed: int = 0


class SessionStore:
    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        default_ttl_ms: int,
        codec: Codec | None = None,
        queue: str | None = None,
    ) -> None:
        self.client = client
        self.default_ttl_ms = default_ttl_ms
        self.pending_sessions = pending_sessions_key(queue or DEFAULT_QUEUE)
        self.codec = codec or Codec()
        self._import = client.register_script(IMPORT)

    # -- listing ----------------------------------------------------------------------------
    def page(self, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
        """Up to about `count` session ids from `cursor`, and the cursor to continue from (0:
        done). A session may appear on two pages if the keyspace is resized meanwhile."""
        if isinstance(self.client, redis.RedisCluster):
            return self._cluster_page(self.client, cursor, count)
        next_cursor, keys = self.client.scan(
            cursor, match=_STATE_PATTERN, count=count, _type="hash"
        )
        return sorted(filter(None, map(_session_id_of, keys))), int(next_cursor)

    @staticmethod
    def _cluster_page(client: redis.RedisCluster, cursor: int, count: int) -> tuple[list[str], int]:
        # Each primary has a SCAN cursor of its own: walk them one node after the other.
        primaries: list[Any] = client.get_primaries()  # type: ignore[no-untyped-call]
        nodes = sorted(primaries, key=lambda node: str(node.name))
        index, node_cursor = cursor % _NODE_SLOTS, cursor // _NODE_SLOTS
        if index >= len(nodes):
            return [], 0  # the cluster has fewer primaries than when the cursor was given
        # A cluster client answers SCAN with a cursor per node it asked: here, one.
        reply: Any = client.scan(
            node_cursor, match=_STATE_PATTERN, count=count, _type="hash", target_nodes=nodes[index]
        )
        cursors, keys = reply
        next_node_cursor = int(next(iter(cursors.values())))
        if next_node_cursor == 0:
            index += 1  # this node is done: the next one from its start
            next_cursor = index if index < len(nodes) else 0
        else:
            next_cursor = next_node_cursor * _NODE_SLOTS + index
        return sorted(filter(None, map(_session_id_of, keys))), next_cursor

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
        # Not HLEN: a queued turn's first attempt waits beside its record (`<turn_id>#s`).
        pipe.hkeys(keys.turns)
        pipe.hgetall(keys.usage)
        (version, raw), ttl_ms, pending, fields, usage = pipe.execute()
        if raw is None:
            return None
        by_day = {k.removeprefix("day:"): int(v) for k, v in usage.items() if k.startswith("day:")}
        state = GameState.model_validate(migrate_state(json.loads(unpack(raw))))
        return {
            "session_id": session_id,
            "version": int(version),
            "ttl_seconds": round(ttl_ms / 1000, 1) if ttl_ms >= 0 else None,
            "pending_turns": int(pending),
            "turn_records": sum(1 for name in fields if "#" not in name),
            "stored_state_bytes": len(raw.encode("utf-8", "surrogateescape")),
            # LLM tokens the session used (each turn's result has them per agent).
            "llm_tokens": {"total": int(usage.get("total", 0)), "by_day": by_day},
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
        of it and `overwrite` is not set. `ValueError` (or `SchemaTooNew`) for a line that
        is not an exported session."""
        if not isinstance(line, dict):
            raise ValueError("not a JSON object")
        missing = {"session_id", "version", "state", "owner_hash"} - line.keys()
        if missing:
            raise ValueError(f"lacks {', '.join(sorted(missing))}")
        session_id = str(line["session_id"])
        if not is_session_id(session_id):
            raise ValueError("session_id is not a session id")
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
                menu_of(stored),
            ],
        )
        return bool(reply[0] == "written")

    def import_lines(
        self,
        lines: Iterable[tuple[int, str]],
        *,
        overwrite: bool,
        on_error: Callable[[int, str], None],
    ) -> ImportOutcome:
        """Each numbered line in turn; a line that cannot be imported is reported to
        `on_error` and skipped, so one bad line does not leave a restore half done."""
        written = kept = failed = 0
        for number, text in lines:
            try:
                imported = self.import_line(json.loads(text), overwrite=overwrite)
            except (ValueError, TypeError, PortalsError) as exc:
                failed += 1
                on_error(number, str(exc))
                continue
            if imported:
                written += 1
            else:
                kept += 1
        return ImportOutcome(written, kept, failed)

    def count(self) -> int:
        return sum(1 for _ in self.ids())

    # -- the queue --------------------------------------------------------------------------
    def sessions_waiting(self) -> int:
        return int(self.client.zcard(self.pending_sessions))


def _session_id_of(key: str | bytes) -> str | None:
    inner = (key.decode() if isinstance(key, bytes) else key)[len(KEY_PREFIX) :]
    if not (inner.startswith("{") and inner.endswith("}")):
        return None
    session_id = inner[1:-1]
    return session_id if is_session_id(session_id) else None
