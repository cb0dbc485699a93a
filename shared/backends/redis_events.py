"""A session's event stream in Redis: appends (fenced by the attempt's runner token) and
reads, blocking ones on the backend's stream client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from shared.backends.keys import SessionKeys
from shared.backends.redis_base import RedisBase
from shared.backends.redis_documents import fill_narrative, narrative_elsewhere
from shared.errors import LeaseLost, SessionNotFound
from shared.models import SessionEvent, TurnRecord

__all__ = ["RedisEvents"]


class RedisEvents(RedisBase):
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
