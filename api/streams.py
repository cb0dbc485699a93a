"""Open event streams, counted per gateway process: by session and by client.

An event stream holds a connection and a waiting reader for as long as the client keeps it.
One session may have SSE_MAX_STREAMS_PER_SESSION open (tabs of one player): a new one beyond
that closes the session's oldest, which is most often a tab or a connection already gone. One
client may have SSE_MAX_STREAMS_PER_CLIENT open over all its sessions: a new one beyond that is
refused with `429 too_many_streams`, so one address cannot hold every reader of a process.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from shared.errors import TooManyStreams

__all__ = ["StreamRegistry", "StreamTicket"]


@dataclass(eq=False)
class StreamTicket:
    session_id: str
    client: str
    # Set when a newer stream of the session took this one's place.
    replaced: asyncio.Event = field(default_factory=asyncio.Event)


class StreamRegistry:
    def __init__(self, per_session: int, per_client: int) -> None:
        self.per_session = per_session
        self.per_client = per_client
        self._by_session: dict[str, deque[StreamTicket]] = defaultdict(deque)
        self._by_client: dict[str, int] = defaultdict(int)

    def open(self, session_id: str, client: str) -> StreamTicket:
        """A ticket for a new stream, or `TooManyStreams`. Release it when the stream ends."""
        open_here = self._by_session.get(session_id, deque())
        replacing = len(open_here) >= self.per_session
        # The oldest it replaces may be this client's own: it does not count against it.
        if self._by_client.get(client, 0) - (replacing and open_here[0].client == client) >= (
            self.per_client
        ):
            raise TooManyStreams(self.per_client)
        open_here = self._by_session[session_id]
        if replacing:
            oldest = open_here.popleft()
            self._forget_client(oldest.client)
            oldest.replaced.set()
        ticket = StreamTicket(session_id, client)
        open_here.append(ticket)
        self._by_client[client] += 1
        return ticket

    def release(self, ticket: StreamTicket) -> None:
        """Idempotent: a stream may end by more than one path."""
        open_here = self._by_session.get(ticket.session_id)
        if open_here is None or ticket not in open_here:
            return
        open_here.remove(ticket)
        if not open_here:
            del self._by_session[ticket.session_id]
        self._forget_client(ticket.client)

    def _forget_client(self, client: str) -> None:
        self._by_client[client] -= 1
        if self._by_client[client] <= 0:
            del self._by_client[client]

    def count(self, *, session_id: str | None = None, client: str | None = None) -> int:
        if session_id is not None:
            return len(self._by_session.get(session_id, ()))
        if client is not None:
            return self._by_client.get(client, 0)
        return sum(len(streams) for streams in self._by_session.values())
