"""What traces cost: the same turns through the same service with tracing off, on for every
turn, and on for one turn in ten (the standard `parentbased_traceidratio` sampler), every
recorded span exported over OTLP/HTTP to a loopback receiver, measured in one run.

    python -m bench.traces                     # 3 rounds of 30 sessions x 4 turns each mode
    python -m bench.traces --rounds 1 --sessions 10 --turns 3

Each round starts a fresh stack (redis-server, two prefork workers, a gateway) for each mode,
in turn, and plays the sessions concurrently. It reports throughput (turns/s, wall clock) and
CPU per turn (utime + stime of the gateway and the workers' process trees: steadier than wall
time on a busy machine), and the cost of each traced mode against off. `bench.turns` prints
the same table after its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from bench.measure import cpu_seconds, process_tree, write_result
from bench.stack import ServiceStack
from tests.support.otlp import otlp_receiver
from tests.support.player import Player

__all__ = ["MODES", "Load", "Mode", "main", "tracing_cost"]


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


@dataclass(frozen=True)
class Mode:
    label: str
    sampler: str | None  # OTEL_TRACES_SAMPLER; None: tracing off
    sampler_arg: str = ""


@dataclass(frozen=True)
class Load:
    sessions: int = 20
    turns: int = 4
    workers: int = 2
    concurrency: int = 2


MODES = (
    Mode("off", None),
    Mode("every turn", "parentbased_always_on"),
    Mode("1 turn in 10", "parentbased_traceidratio", "0.1"),
)


def _round(
    workdir: Path, load: Load, env: dict[str, str], redis_url: str | None
) -> tuple[float, float]:
    """(turns per second, CPU ms per turn) of one stack."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack = ServiceStack(
        workdir,
        workers=load.workers,
        concurrency=load.concurrency,
        env=env,
        redis_url=redis_url,
    )
    try:
        _play(stack.gateway.url, 2)  # warm up: imports, scripts loaded, pools filled
        cpu_before = cpu_seconds(_pids(stack))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=load.sessions) as pool:
            done = sum(
                pool.map(lambda _: _play(stack.gateway.url, load.turns), range(load.sessions))
            )
        wall = time.perf_counter() - started
        cpu = cpu_seconds(_pids(stack)) - cpu_before
        return done / wall, cpu / max(done, 1) * 1000
    finally:
        stack.stop()


def _env(mode: Mode, endpoint: str) -> dict[str, str]:
    if mode.sampler is None:
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}  # off even if the caller's shell sets it
    # The SDK's defaults otherwise (a batch every 5 s). The SDK on even if the caller's
    # environment turned it off (as CrewAI's switches do in a process that loaded the game
    # without tracing).
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_SAMPLER": mode.sampler,
        "OTEL_TRACES_SAMPLER_ARG": mode.sampler_arg,
        "TRACE_STORE_COMMANDS": "scripts",
    }


def tracing_cost(rounds: int, load: Load, redis_url: str | None = None) -> str:
    """The table: each mode's median throughput and CPU per turn, and its ratio to off
    (each stack on a redis-server of its own, or on `redis_url`'s, under queue names and
    sessions of its own)."""
    measured: dict[Mode, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    spans: dict[Mode, int] = {}
    with otlp_receiver() as receiver, tempfile.TemporaryDirectory() as scratch:
        for number in range(rounds):
            for index, mode in enumerate(MODES):
                before = len(receiver.snapshot())
                workdir = Path(scratch) / f"{index}-{number}"
                env = _env(mode, receiver.endpoint)
                measured[mode].append(_round(workdir, load, env, redis_url))
                # A stopped process has flushed its batch.
                spans[mode] = spans.get(mode, 0) + len(receiver.snapshot()) - before
    rate = {mode: median(r for r, _ in runs) for mode, runs in measured.items()}
    cpu = {mode: median(c for _, c in runs) for mode, runs in measured.items()}
    off = MODES[0]
    lines = [
        f"Tracing off and on, {rounds} round(s) per mode, {load.sessions} sessions x "
        f"{load.turns} turns, offline narrator, {load.workers} prefork worker(s) x "
        f"{load.concurrency} (medians; the target: tracing costs <= 10 % of throughput)",
        "",
        "| tracing | turns/s | / off | CPU per turn, ms (gateway + workers) | / off | spans |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        lines.append(
            f"| {mode.label} | {rate[mode]:.1f} | {rate[mode] / rate[off]:.2f} | "
            f"{cpu[mode]:.1f} | {cpu[mode] / cpu[off]:.2f} | {spans.get(mode, 0)} |"
        )
    lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> str:
    load = Load(args.sessions, args.turns, args.workers, args.concurrency)
    return tracing_cost(args.rounds, load, args.redis_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--redis-url", default=None, help="a Redis of yours (default: a redis-server per stack)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    table = run(args)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("traces", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
