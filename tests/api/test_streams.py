"""Open event streams are capped per session (the oldest is replaced) and per client (a new
one is 429 too_many_streams), in one gateway process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from api.streams import StreamRegistry
from shared.errors import TooManyStreams
from tests.support.player import Player
from tests.support.waiting import wait_until


def test_the_registry_replaces_a_sessions_oldest_and_refuses_a_clients_excess() -> None:
    streams = StreamRegistry(per_session=2, per_client=3)
    first, second = streams.open("s1", "a"), streams.open("s1", "a")
    third = streams.open("s1", "a")
    assert first.replaced.is_set() and not second.replaced.is_set()
    assert streams.count(session_id="s1") == 2 and streams.count(client="a") == 2
    streams.open("s2", "a")
    with pytest.raises(TooManyStreams):
        streams.open("s3", "a")
    # Replacing its own oldest (s1 is full) does not count against the client.
    fourth = streams.open("s1", "a")
    assert second.replaced.is_set() and streams.count(client="a") == 3
    streams.open("s3", "b")  # another client is not held back
    for ticket in (first, second, third, fourth, fourth):  # release is idempotent
        streams.release(ticket)
    assert streams.count(session_id="s1") == 0
    assert streams.count(client="a") == 1


@dataclass
class OpenStream:
    lines: list[str] = field(default_factory=list)
    status: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)


@contextmanager
def streaming(player: Player, count: int) -> Iterator[list[OpenStream]]:
    streams = [OpenStream() for _ in range(count)]
    stop = threading.Event()

    def read(stream: OpenStream) -> None:
        try:
            with httpx.stream(
                "GET",
                f"{player.base_url}/sessions/{player.session_id}/events",
                headers=player.auth,
                timeout=httpx.Timeout(30),
            ) as response:
                stream.status = response.status_code
                stream.opened.set()
                for line in response.iter_lines():
                    stream.lines.append(line)
                    if stop.is_set():
                        return
        finally:
            stream.opened.set()
            stream.ended.set()

    threads = []
    for stream in streams:
        thread = threading.Thread(target=read, args=(stream,), daemon=True)
        thread.start()
        threads.append(thread)
        # One after the other: which is the oldest must be known.
        assert stream.opened.wait(30)
    try:
        yield streams
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_a_new_stream_beyond_the_session_cap_ends_the_oldest(
    gateway_url_factory: Callable[..., str],
) -> None:
    url = gateway_url_factory(sse_max_streams_per_session=2, sse_ping_interval=1)
    player = Player(url)
    try:
        with streaming(player, 3) as streams:
            assert [s.status for s in streams] == [200, 200, 200]
            assert streams[0].ended.wait(30), "the oldest stream was not closed"
            assert ": replaced by a newer stream of this session" in streams[0].lines
            # The two newest go on: a ping (every second here) still reaches them.
            before = len(streams[2].lines)
            wait_until(lambda: len(streams[2].lines) > before, timeout=30, what="a ping")
            assert not streams[1].ended.is_set() and not streams[2].ended.is_set()
    finally:
        player.close()


def test_a_client_with_too_many_streams_is_refused(
    gateway_url_factory: Callable[..., str],
) -> None:
    url = gateway_url_factory(
        sse_max_streams_per_session=4, sse_max_streams_per_client=2, sse_ping_interval=1
    )
    one, other = Player(url), Player(url)
    try:
        with streaming(one, 2):
            refused = httpx.get(
                f"{url}/sessions/{other.session_id}/events", headers=other.auth, timeout=30
            )
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) >= 1

        # Streams that ended are returned: the client may open new ones.
        def accepted() -> bool:
            with httpx.stream(
                "GET", f"{url}/sessions/{other.session_id}/events", headers=other.auth
            ) as response:
                return response.status_code == 200

        wait_until(accepted, timeout=30, what="a stream accepted again")
    finally:
        one.close()
        other.close()
