"""A small SSE client for tests: read events until a condition holds, within a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["SseEvent", "read_events"]


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


def read_events(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    until: Callable[[list[SseEvent]], bool],
    timeout: float = 60,
    on_open: Callable[[], None] | None = None,
) -> list[SseEvent]:
    """Collect events from `url` until `until(events)` is true. The server's keep-alive
    comments let the deadline be checked even when no event comes."""
    events: list[SseEvent] = []
    deadline = time.monotonic() + timeout
    fields: dict[str, str] = {}
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(timeout)) as response:
        response.raise_for_status()
        if on_open is not None:
            on_open()
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SSE condition not met in {timeout}s; got {events}")
            if line == "":
                if "data" in fields:
                    events.append(
                        SseEvent(
                            fields.get("id"),
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                        )
                    )
                    if until(events):
                        return events
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    raise AssertionError(f"stream ended before the condition held; got {events}")
