"""Turns that wait on a slow LLM: how many one worker process keeps in flight, with a thread
pool against the prefork pool (the baseline), measured in the same run.

    python -m bench.inflight                       # 150 turns at once, LLM answers after 2 s
    python -m bench.inflight --turns 300 --threads 300 --llm-delay 2
    python -m bench.inflight --quick               # tiny counts (the test command runs this)

It starts its own redis-server, the tests' OpenAI-compatible server (each call answers after
`--llm-delay` seconds), one worker process and a gateway. All turns are submitted at once, on
as many sessions; the table gives the turn latency (accepted to completed), the throughput,
the most LLM calls waiting at once, Redis commands per turn (INFO commandstats, gateway and
worker together), and the worker's memory idle and at the peak, per turn in flight.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from bench.stack import ServiceStack
from bench.turns import Row, render, worker_pss_kb
from tests.support.fake_llm import FakeLLM, fake_llm

logger = logging.getLogger("bench.inflight")

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Run:
    row: Row
    max_in_flight: int
    pss_idle_kb: int
    pss_peak_kb: int
    commands_per_turn: float
    calls_per_turn: float


def _command_count(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))


def _play_one(http: httpx.Client) -> float:
    created = http.post("/sessions", json={"seed": 3}).json()
    auth = {"Authorization": f"Bearer {created['player_token']}"}
    base = f"/sessions/{created['session_id']}"
    started = time.perf_counter()
    turn_id = http.post(f"{base}/turns", json={"choice_index": 1}, headers=auth).json()["turn_id"]
    while True:
        turn = http.get(f"{base}/turns/{turn_id}", params={"wait": 30}, headers=auth).json()
        if turn["status"] in ("completed", "failed"):
            assert turn["status"] == "completed", turn
            return time.perf_counter() - started


def measure(
    llm: FakeLLM, workdir: Path, *, pool: str, concurrency: int, turns: int, delay: float
) -> Run:
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": f"openai/wait-{delay}",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-bench",
        "LLM_TIMEOUT": "120",
        "LLM_RETRIES": "0",
        "LLM_FALLBACK": "fail",
        "REDIS_MAX_CONNECTIONS": "200",
        "WORKER_STEP_THREADS": str(max(concurrency, 1)),
    }
    stack = ServiceStack(workdir, workers=0, concurrency=concurrency, env=env, pool=pool)
    try:
        stack.add_worker()
        worker = stack.workers[0]
        client = redis.Redis.from_url(stack.redis_url)
        llm.max_in_flight = 0
        calls_before = len(llm.requests)
        pss_idle = worker_pss_kb(worker.pid)
        peak = [pss_idle]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak.append(worker_pss_kb(worker.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        commands_before = _command_count(client)
        limits = httpx.Limits(max_connections=turns + 8, max_keepalive_connections=turns + 8)
        with httpx.Client(base_url=stack.gateway.url, timeout=300, limits=limits) as http:
            row = Row(f"{turns} turns at once, {pool} pool -c {concurrency}")
            sampler.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=turns) as players:
                row.samples = list(players.map(lambda _: _play_one(http), range(turns)))
            row.elapsed = time.perf_counter() - started
            sampling.set()
            sampler.join(timeout=5)
        commands = _command_count(client) - commands_before
        client.close()
        return Run(
            row=row,
            max_in_flight=llm.max_in_flight,
            pss_idle_kb=pss_idle,
            pss_peak_kb=max(peak),
            # Everything a player's turn cost here, its POST /sessions and long polls included.
            commands_per_turn=commands / turns,
            calls_per_turn=(len(llm.requests) - calls_before) / turns,
        )
    finally:
        stack.stop()


def run(args: argparse.Namespace) -> str:
    rows: list[Row] = []
    extra: list[tuple[str, str]] = []
    with fake_llm() as llm, tempfile.TemporaryDirectory(prefix="portals-inflight-") as tmp:
        runs = [
            ("prefork", 2, min(args.turns, 8)),  # the baseline: one turn per child
            ("threads", args.threads, args.turns),
        ]
        for pool, concurrency, turns in runs:
            logger.info("measuring %s -c %d with %d turns", pool, concurrency, turns)
            result = measure(
                llm,
                Path(tmp) / pool,
                pool=pool,
                concurrency=concurrency,
                turns=turns,
                delay=args.llm_delay,
            )
            rate = len(result.row.samples) / result.row.elapsed
            result.row.note = (
                f"{result.max_in_flight} LLM calls waiting at once; "
                f"{result.calls_per_turn:.1f} LLM calls per turn"
            )
            rows.append(result.row)
            grown = max(result.pss_peak_kb - result.pss_idle_kb, 0)
            per_turn = grown / max(result.max_in_flight, 1)
            expected = result.max_in_flight / (result.row.percentile(0.5) / 1000)
            extra += [
                (
                    f"{pool}: worker PSS idle / at peak",
                    f"{result.pss_idle_kb / 1024:.0f} MiB / {result.pss_peak_kb / 1024:.0f} MiB",
                ),
                (f"{pool}: memory per turn in flight", f"{per_turn:.0f} KiB"),
                (
                    f"{pool}: throughput vs in flight / latency",
                    f"{rate:.1f}/s vs {expected:.1f}/s",
                ),
                (
                    f"{pool}: Redis commands per turn (incl. POST /sessions)",
                    f"{result.commands_per_turn:.1f}",
                ),
            ]
    header = (
        f"# In-flight LLM turns per worker process ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}"
        f", LLM answers after {args.llm_delay} s."
    )
    return render(rows, extra, header)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=150)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--llm-delay", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.turns, args.threads, args.llm_delay = 6, 8, 0.2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    table = run(args)
    sys.stdout.write(table)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"inflight-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
        path.write_text(table)
        sys.stderr.write(f"written to {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
