"""What every benchmark reads the same way: processes' CPU time, a Redis server's command
counts, and where a result table is written."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import redis

__all__ = ["RESULTS", "command_calls", "cpu_seconds", "process_tree", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its live children (a prefork worker and its pool)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of these processes so far; one that has exited counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLOCK_TICKS


def command_calls(client: redis.Redis) -> Counter[str]:
    """Calls per command so far (`INFO commandstats`, scripts' own calls included), the
    benchmark's own INFO left out."""
    counts: Counter[str] = Counter()
    for name, values in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command != "info":
            counts[command] = int(values["calls"])
    return counts


def write_result(kind: str, table: str) -> Path:
    """`bench/results/<kind>-<UTC time>.md`."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(table)
    return path
