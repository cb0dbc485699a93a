"""`python -m bench.pools`: which Celery pool to run, per narrator, from CPU time per turn.

    python -m bench.pools                 # 150 turns per cell
    python -m bench.pools --turns 40      # a quicker look

For each narrator (offline; the LLM narrator on the tests' fake server, answering at once so
that only the service's own CPU shows) and each pool (prefork, threads, solo), one worker
process with the store and the broker on redis-servers of their own. One player plays turns
back to back (submit, long-poll); then 8 players at once. The table gives the worker's CPU
time per turn (every process of the worker: a prefork parent and its children), the turn
latency, and the throughput of the 8 players. Commands per turn are in `bench.commands`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.measure import cpu_seconds, process_tree, write_result
from bench.stack import ServiceStack
from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.redis_server import RedisServer

__all__ = ["main"]

POOLS = {"prefork": 2, "threads": 8, "solo": 1}


@dataclass
class Cell:
    narrator: str
    pool: str
    concurrency: int
    cpu_ms: float
    p50_ms: float
    per_second: float


def _turn(player: Player) -> float:
    started = time.perf_counter()
    answer = player.submit({"action": "Look around"})
    assert answer.status_code == 202, answer.text
    done = player.finished(answer.json()["turn_id"], timeout=120)
    assert done["status"] == "completed", done
    return time.perf_counter() - started


def _measure(
    workdir: Path, narrator: str, pool: str, turns: int, llm: FakeLLM, broker_url: str | None
) -> Cell:
    concurrency = POOLS[pool]
    broker = None if broker_url else RedisServer(workdir / "broker", appendonly=False).start()
    env = {
        "CELERY_BROKER_URL": broker_url or broker.url,  # type: ignore[union-attr]
        "MAX_TURNS": "100000",
        "NARRATOR": narrator,
        "LLM_MODEL": "openai/wait-0",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-bench",
        "LLM_FALLBACK": "fail",
    }
    stack = ServiceStack(
        workdir, workers=1, concurrency=concurrency, env=env, pool=pool, appendonly=False
    )
    players: list[Player] = []
    try:
        players = [Player(stack.gateway.url, seed=7 + n) for n in range(8)]
        for player in players:  # create the characters; warm every path
            first = player.submit({"choice_index": 1})
            assert player.finished(first.json()["turn_id"], timeout=120)["status"] == "completed"
            _turn(player)
        pids = process_tree(stack.workers[0].pid)
        before = cpu_seconds(pids)
        latencies = [_turn(players[0]) for _ in range(turns)]
        cpu_ms = (cpu_seconds(pids) - before) * 1000 / turns
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(players)) as crowd:
            rounds = max(1, turns // len(players))
            list(crowd.map(lambda p: [_turn(p) for _ in range(rounds)], players))
        per_second = rounds * len(players) / (time.perf_counter() - started)
        return Cell(
            narrator,
            pool,
            concurrency,
            cpu_ms,
            statistics.median(latencies) * 1000,
            per_second,
        )
    finally:
        for player in players:
            player.close()
        stack.stop()
        if broker is not None:
            broker.stop()


def render(cells: list[Cell], turns: int, broker: str | None = None) -> str:
    lines = [
        f"# Celery pools per narrator {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"One worker process per cell; {turns} turns back to back by one player (CPU, p50), "
        "then 8 players at once (throughput). The LLM answers at once (the fake server), so "
        "its cells show the service's own CPU per LLM turn. Worker CPU: utime + stime of the "
        "worker and its pool processes. Broker: "
        + ("a Redis of its own" if broker is None else broker.split("@")[-1])
        + ".",
        "",
        "| narrator | pool | -c | worker CPU per turn ms | p50 ms, one player "
        "| turns/s, 8 players |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.narrator} | {c.pool} | {c.concurrency} | {c.cpu_ms:.2f} | {c.p50_ms:.2f} "
            f"| {c.per_second:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=150)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--broker", default=None, help="a broker URL to use (e.g. RabbitMQ's) instead of a Redis"
    )
    parser.add_argument("--narrators", default="offline,llm")
    parser.add_argument("--pools", default=",".join(POOLS))
    args = parser.parse_args(argv)
    cells = []
    with fake_llm() as llm, tempfile.TemporaryDirectory(prefix="pocket-pools-") as tmp:
        for narrator in args.narrators.split(","):
            for pool in args.pools.split(","):
                cell_dir = Path(tmp) / f"{narrator}-{pool}"
                cells.append(_measure(cell_dir, narrator, pool, args.turns, llm, args.broker))
    table = render(cells, args.turns, args.broker)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("pools", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
