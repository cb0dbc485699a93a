"""What traces cost: the same turns through the same service, with tracing off and on (every
span exported over OTLP/HTTP to a loopback receiver), measured in one run.

    python -m bench.traces                     # 3 rounds of 30 sessions x 4 turns each way
    python -m bench.traces --rounds 1 --sessions 10 --turns 3

Each round starts a fresh stack (redis-server, two prefork workers, a gateway) for each mode,
alternating off and on, and plays the sessions concurrently. It reports throughput (turns/s,
wall clock) and CPU per turn (utime + stime of the gateway and the workers' process trees:
steadier than wall time on a busy machine), and the cost of tracing as on/off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

from bench.measure import cpu_seconds, process_tree, write_result
from bench.stack import ServiceStack
from tests.support.otlp import otlp_receiver
from tests.support.player import Player

__all__ = ["main"]


def _play(url: str, turns: int) -> int:
    player = Player(url)
    try:
        done = 0
        for _ in range(turns):
            sent = player.submit({"choice_index": 1})
            if sent.status_code == 202:
                done += player.turn(sent.json()["turn_id"], wait=30)["status"] == "completed"
        return done
    finally:
        player.close()


def _pids(stack: ServiceStack) -> list[int]:
    return [stack.gateway.pid, *(pid for w in stack.workers for pid in process_tree(w.pid))]


def _round(workdir: Path, sessions: int, turns: int, endpoint: str | None) -> tuple[float, float]:
    """(turns per second, CPU ms per turn) of one stack."""
    # The SDK's defaults otherwise (a batch every 5 s, every trace sampled). The SDK on even
    # if the caller's environment turned it off (as CrewAI's switches do in a process that
    # loaded the game without tracing).
    env = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "false"} if endpoint else {}
    )
    stack = ServiceStack(workdir, workers=2, concurrency=2, env=env)
    try:
        _play(stack.gateway.url, 2)  # warm up: imports, scripts loaded, pools filled
        cpu_before = cpu_seconds(_pids(stack))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=sessions) as pool:
            done = sum(pool.map(lambda _: _play(stack.gateway.url, turns), range(sessions)))
        wall = time.perf_counter() - started
        cpu = cpu_seconds(_pids(stack)) - cpu_before
        return done / wall, cpu / max(done, 1) * 1000
    finally:
        stack.stop()


def run(args: argparse.Namespace) -> str:
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    with otlp_receiver() as receiver, tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):
            off.append(_round(Path(scratch) / f"off{number}", args.sessions, args.turns, None))
            on.append(
                _round(Path(scratch) / f"on{number}", args.sessions, args.turns, receiver.endpoint)
            )
        spans = len(receiver.snapshot())
    rate_off, rate_on = median(r for r, _ in off), median(r for r, _ in on)
    cpu_off, cpu_on = median(c for _, c in off), median(c for _, c in on)
    lines = [
        f"Tracing off and on, {args.rounds} round(s) each, {args.sessions} sessions x "
        f"{args.turns} turns, offline narrator, 2 prefork workers x 2 (medians)",
        "",
        "| measure | off | on | on / off |",
        "|---|---:|---:|---:|",
        f"| throughput, turns/s | {rate_off:.1f} | {rate_on:.1f} | {rate_on / rate_off:.2f} |",
        f"| CPU per turn, ms (gateway + workers) | {cpu_off:.1f} | {cpu_on:.1f} | "
        f"{cpu_on / cpu_off:.2f} |",
        "",
        f"Spans received with tracing on: {spans}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    table = run(args)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("traces", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
