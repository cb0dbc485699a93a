"""Reading a worker's JSON log: each finished turn's 'turn … completed in N ms' line."""

from __future__ import annotations

import json
from datetime import datetime

__all__ = ["turn_spans", "most_turns_running_at_once"]


def turn_spans(log: str) -> list[tuple[float, float]]:
    """(start, end) in epoch seconds of every turn the worker logged as completed."""
    spans: list[tuple[float, float]] = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if "duration_ms" not in entry or " completed in " not in entry["message"]:
            continue
        end = datetime.fromisoformat(entry["time"]).timestamp()
        spans.append((end - entry["duration_ms"] / 1000, end))
    return spans


def most_turns_running_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of turns between their start and their end at one moment."""
    edges = [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans]
    running = most = 0
    for _moment, change in sorted(edges):  # an end sorts before a start at the same moment
        running += change
        most = max(most, running)
    return most
