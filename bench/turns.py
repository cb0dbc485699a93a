"""Turn latency, throughput, cost growth and memory, against raw Celery in the same run.

    python -m bench.turns                 # the full run
    python -m bench.turns --quick         # tiny counts (the test suite's smoke run)
    python -m bench.turns --trace-rounds 0    # without the tracing off/on table

Starts its own redis-server on a free port (or uses REDIS_URL with --redis-url), worker
processes and a uvicorn gateway, warms up, then measures each row and prints one table with
p50/p95/p99 and throughput, the ratios the targets are about, and memory; then what tracing
costs (`bench.traces`: the same load with tracing off, on for every turn and on for one turn
in ten, on fresh stacks in one run). The tables are also written to bench/results/ with the
machine's description.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.client import CLIENT_LIMITS, post_turn
from bench.measure import cpu_seconds, process_tree, write_result
from bench.raw_celery import RAW_TASK
from bench.stack import ServiceStack
from bench.traces import Load, tracing_cost
from shared.backends.codec import unpack
from shared.backends.keys import SessionKeys
from shared.settings import Settings
from tests.support.redis_server import RedisServer
from tests.support.sse import SseEvent, read_events
from worker.application import create_celery_app

# As docker-compose.yml starts Redis: a stream preallocates one node of this many bytes.
COMPOSE_STREAM_NODE_MAX_BYTES = 2048


@dataclass
class Row:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0
    note: str = ""

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.elapsed if self.elapsed else 0.0


def timed(
    rows: list[Row],
    name: str,
    runs: Callable[[], float],
    count: int,
    concurrency: int = 1,
    note: str = "",
) -> Row:
    """Run `runs` (one sample each, returns its latency) `count` times over `concurrency`
    threads; the row's throughput is samples over wall time."""
    row = Row(name, note=note)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        row.samples = list(pool.map(lambda _: runs(), range(count)))
    row.elapsed = time.perf_counter() - started
    rows.append(row)
    return row


class Player:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60, limits=CLIENT_LIMITS)
        created = self.http.post("/sessions", json={"seed": 1}).json()
        self.sid = created["session_id"]
        self.auth = {"Authorization": f"Bearer {created['player_token']}"}
        self.base = base
        self.last_turn: str | None = None

    def submit(self) -> str:
        answer = post_turn(
            self.http, f"/sessions/{self.sid}/turns", {"action": "Look around"}, self.auth
        )
        self.last_turn = str(answer.json()["turn_id"])
        return self.last_turn

    def turn_by_long_poll(self) -> float:
        started = time.perf_counter()
        turn_id = self.submit()
        result = self.http.get(
            f"/sessions/{self.sid}/turns/{turn_id}", params={"wait": 30}, headers=self.auth
        ).json()
        assert result["status"] == "completed", result
        return time.perf_counter() - started

    def turn_by_sse(self) -> float:
        box: dict[str, Any] = {}

        def submit() -> None:
            box["started"] = time.perf_counter()
            box["turn_id"] = self.submit()

        def done(events: list[SseEvent]) -> bool:
            return any(
                e.event == "turn.completed" and e.data["turn_id"] == box.get("turn_id")
                for e in events
            )

        read_events(
            f"{self.base}/sessions/{self.sid}/events",
            headers=self.auth,
            until=done,
            on_open=submit,
            timeout=60,
        )
        return time.perf_counter() - float(box["started"])

    def wait_idle(self) -> None:
        """Until every turn submitted so far is finished (the last one is, then)."""
        if self.last_turn is not None:
            self.http.get(
                f"/sessions/{self.sid}/turns/{self.last_turn}",
                params={"wait": 30},
                headers=self.auth,
            ).raise_for_status()

    def close(self) -> None:
        self.http.close()


class RawCelery:
    """Round trips of the raw task: publish, then wait for its PUBLISH on a channel."""

    def __init__(self, stack: ServiceStack, state_json: str) -> None:
        self.client = redis.Redis.from_url(stack.redis_url)
        settings = Settings(
            redis_url=stack.redis_url, celery_queue=stack.env["RAW_QUEUE"], _env_file=None
        )
        self.app = create_celery_app(settings)
        self.channel = f"bench:{uuid.uuid4().hex}"
        self.waiting: dict[str, threading.Event] = {}
        self.keys = [f"bench:raw:{{{n}}}" for n in range(200)]
        for key in self.keys:
            self.client.set(key, state_json, ex=3600)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(**{self.channel: self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.01, daemon=True)
        self.counter = 0
        self.lock = threading.Lock()

    def _on_message(self, message: dict[str, Any]) -> None:
        event = self.waiting.pop(message["data"].decode(), None)
        if event is not None:
            event.set()

    def round_trip(self) -> float:
        with self.lock:
            self.counter += 1
            key = self.keys[self.counter % len(self.keys)]
        token, done = uuid.uuid4().hex, threading.Event()
        self.waiting[token] = done
        started = time.perf_counter()
        self.app.send_task(RAW_TASK, args=[key, self.channel, token])
        if not done.wait(60):
            raise TimeoutError("raw task did not answer")
        return time.perf_counter() - started

    def floor(self) -> float:
        """The same work in-process with redis-py and no queue."""
        with self.lock:
            self.counter += 1
            key = self.keys[self.counter % len(self.keys)]
        started = time.perf_counter()
        state = json.loads(self.client.get(key) or b"{}")
        state["adventure_turn"] = int(state.get("adventure_turn", 0)) + 1
        self.client.set(key, json.dumps(state), ex=3600)
        self.client.publish(self.channel + ":floor", key)
        return time.perf_counter() - started

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=5)  # before closing the socket it reads from
        self.pubsub.close()
        self.client.close()


def _proc_kb(pid: int, field_name: str, path: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def worker_pss_kb(pid: int) -> int:
    return sum(_proc_kb(p, "Pss", "smaps_rollup") for p in process_tree(pid))


def session_bytes(client: redis.Redis, session_id: str) -> tuple[int, int]:
    keys = SessionKeys(session_id)
    total = sum(int(client.memory_usage(k) or 0) for k in keys.all())
    return total, int(client.hstrlen(keys.state, "state"))


def key_breakdown(client: redis.Redis, session_id: str) -> str:
    keys = SessionKeys(session_id)
    parts = [
        (k.rsplit(":", 1)[-1] if k != keys.state else "state", client.memory_usage(k))
        for k in keys.all()
    ]
    return ", ".join(f"{name} {size}" for name, size in parts if size)


_VARIED_ACTIONS = [
    "I study the map by candlelight",
    "I ask the innkeeper about rumours",
    "I sharpen my blade and listen",
    "I follow the old road north",
    "I search the ruins for tracks",
]


def play_varied(player: Player, turns: int) -> int:
    """Choices and free actions in turn, as a player would; returns the turns played (fewer
    than asked when the adventure ends first)."""
    for n in range(turns):
        state = player.http.get(f"/sessions/{player.sid}", headers=player.auth).json()["state"]
        if state["adventure_completed"]:
            return n
        choices = state["current_choices"]
        body: dict[str, Any] = {"choice_index": 1} if choices else {"action": "Look around"}
        if n % 2 and state["phase"] != "combat":
            body = {"action": _VARIED_ACTIONS[n % len(_VARIED_ACTIONS)]}
        answer = post_turn(player.http, f"/sessions/{player.sid}/turns", body, player.auth)
        turn_id = answer.json()["turn_id"]
        player.http.get(
            f"/sessions/{player.sid}/turns/{turn_id}", params={"wait": 30}, headers=player.auth
        ).raise_for_status()
    return turns


def session_memory(
    client: redis.Redis, base: str, *, turns: int, own: RedisServer | None
) -> list[tuple[str, str]]:
    """Redis bytes of one session after `turns` turns: the same action every turn, then varied
    play, then (on a Redis this run started) with docker-compose.yml's stream node size."""
    rows = []
    same = Player(base)
    for _ in range(turns):
        same.turn_by_long_poll()
    total, state_size = session_bytes(client, same.sid)
    rows.append(
        (
            f"Redis bytes per session after {turns} turns (all keys; Redis defaults)",
            f"{total} B (state alone {state_size} B; {key_breakdown(client, same.sid)})",
        )
    )
    same.close()
    varied = Player(base)
    played = play_varied(varied, turns)
    total, state_size = session_bytes(client, varied.sid)
    rows.append(
        (
            f"Redis bytes per session after {played} turns of varied play (choices, free actions)",
            f"{total} B (state alone {state_size} B; {key_breakdown(client, varied.sid)})",
        )
    )
    varied.close()
    if own is not None:
        client.config_set("stream-node-max-bytes", COMPOSE_STREAM_NODE_MAX_BYTES)
        tuned = Player(base)
        for _ in range(turns):
            tuned.turn_by_long_poll()
        total, _ = session_bytes(client, tuned.sid)
        rows.append(
            (
                f"Redis bytes per session after {turns} turns, "
                f"stream-node-max-bytes {COMPOSE_STREAM_NODE_MAX_BYTES} (docker-compose.yml)",
                f"{total} B ({key_breakdown(client, tuned.sid)})",
            )
        )
        tuned.close()
    return rows


def cost_growth(base: str, client: redis.Redis, marks: list[int]) -> dict[int, tuple[float, int]]:
    """Latency (median of 5 turns ending at each mark) and stored state size at each mark."""
    player, results, latencies = Player(base), {}, []
    try:
        for turn in range(1, max(marks) + 1):
            latencies.append(player.turn_by_long_poll())
            if turn in marks:
                _, size = session_bytes(client, player.sid)
                results[turn] = (statistics.median(latencies[-5:]), size)
    finally:
        player.close()
    return results


def render(rows: list[Row], extra: list[tuple[str, str]], header: str) -> str:
    lines = [
        header,
        "",
        "| row | n | p50 ms | p95 ms | p99 ms | per s | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {len(row.samples)} | {row.percentile(0.5):.2f} | "
            f"{row.percentile(0.95):.2f} | {row.percentile(0.99):.2f} | "
            f"{row.throughput:.0f} | {row.note} |"
        )
    lines += ["", "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in extra]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> str:
    n = args.samples
    rows: list[Row] = []
    extra: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pocket-bench-") as tmp:
        env = {
            "MAX_TURNS": "100000",
            "RAW_QUEUE": f"bench.raw.{uuid.uuid4().hex[:8]}",
        }
        stack = ServiceStack(
            Path(tmp),
            workers=args.workers,
            concurrency=args.concurrency,
            env=env,
            redis_url=args.redis_url,
        )
        client = redis.Redis.from_url(stack.redis_url)
        raw: RawCelery | None = None
        try:
            base = stack.gateway.url
            warm = Player(base)
            for _ in range(5):
                warm.turn_by_long_poll()
            # The baseline stores the same state, as plain JSON.
            state_json = unpack(client.hget(SessionKeys(warm.sid).state, "state") or b"{}")
            warm.close()
            raw = RawCelery(stack, state_json)
            _raw_worker(stack, args)
            for _ in range(10):
                raw.round_trip()

            floor = timed(rows, "floor: same work in-process (redis-py, no queue)", raw.floor, n)
            raw_tree = _Cpu([stack.workers[-1].pid])
            raw_seq = timed(rows, "raw Celery task round trip, sequential", raw.round_trip, n)
            raw_cpu = raw_tree.per(n)
            raw_par = timed(
                rows,
                "raw Celery task round trip, 100 concurrent",
                raw.round_trip,
                n * 4,
                concurrency=100,
            )
            player = Player(base)
            sse = timed(
                rows,
                "turn end to end: POST -> turn.completed (SSE), one player",
                player.turn_by_sse,
                n,
            )
            service_workers = _Cpu([w.pid for w in stack.workers[: args.workers]])
            gateway = _Cpu([stack.gateway.pid])
            poll = timed(
                rows,
                "turn end to end: POST -> result (long-poll), one player",
                player.turn_by_long_poll,
                n,
            )
            worker_cpu, gateway_cpu = service_workers.per(n), gateway.per(n)
            player.close()
            # Spread over sessions so no session reaches its pending-turn limit.
            posters = [Player(base) for _ in range(max(1, n // 4))]
            rotation = iter(range(10**9))
            post = timed(
                rows,
                "gateway POST /turns alone, workers running (they share the 2 cores)",
                lambda: _post_only(posters[next(rotation) % len(posters)]),
                n,
            )
            for poster in posters:  # no turn in flight when the workers stop
                poster.wait_idle()
            with paused(stack.workers):
                post_alone = timed(
                    rows,
                    "gateway POST /turns alone, workers paused (SIGSTOP)",
                    lambda: _post_only(posters[next(rotation) % len(posters)]),
                    n,
                )
            for poster in posters:
                poster.wait_idle()
                poster.close()
            players = [Player(base) for _ in range(100)]
            counter = iter(range(10**9))
            lock = threading.Lock()

            def concurrent_turn() -> float:
                with lock:
                    who = players[next(counter) % len(players)]
                return who.turn_by_long_poll()

            e2e_par = timed(
                rows,
                "turn end to end (long-poll), 100 sessions",
                concurrent_turn,
                n * 4,
                concurrency=100,
            )
            readers = _OnePerThread(players)
            reads = timed(
                rows,
                "gateway GET /sessions/{id}, 50 concurrent",
                lambda: _get_only(readers),
                n * 10,
                concurrency=50,
            )
            for p in players:
                p.close()

            marks = [5, 50, 500] if not args.quick else [5, 10, 20]
            growth = cost_growth(base, client, marks)
            for mark, (latency, size) in growth.items():
                extra.append(
                    (
                        f"turn {mark}: latency (median of 5) / stored state",
                        f"{latency * 1000:.1f} ms / {size} B",
                    )
                )
            extra += session_memory(client, base, turns=min(50, marks[1]), own=stack.redis)
            extra += [
                (
                    f"worker PSS, {args.workers} worker(s) x concurrency {args.concurrency}",
                    f"{sum(worker_pss_kb(w.pid) for w in stack.workers[: args.workers]) // 1024}"
                    " MiB",
                ),
                ("gateway RSS", f"{_proc_kb(stack.gateway.pid, 'VmRSS', 'status') // 1024} MiB"),
                (
                    "ratio: end-to-end p50 (long-poll) / raw Celery p50",
                    f"{poll.percentile(0.5) / raw_seq.percentile(0.5):.2f} (target <= 1.5)",
                ),
                (
                    "ratio: end-to-end p50 (SSE) / raw Celery p50",
                    f"{sse.percentile(0.5) / raw_seq.percentile(0.5):.2f}",
                ),
                (
                    "ratio: throughput 100 sessions / raw Celery 100 concurrent",
                    f"{e2e_par.throughput / raw_par.throughput:.2f} (target >= 0.7)",
                ),
                (
                    f"ratio: turn {marks[-1]} / turn {marks[0]} latency",
                    f"{growth[marks[-1]][0] / growth[marks[0]][0]:.2f} (target <= 1.2)",
                ),
                (
                    "gateway POST /turns p50, workers paused / running",
                    f"{post_alone.percentile(0.5):.2f} ms / {post.percentile(0.5):.2f} ms"
                    " (target <= 2)",
                ),
                ("gateway requests/s (GET, one uvicorn process)", f"{reads.throughput:.0f}"),
                (
                    "worker CPU per offline turn (long-poll row; all worker processes)",
                    f"{worker_cpu:.2f} ms (target <= 3); raw Celery worker per task "
                    f"{raw_cpu:.2f} ms",
                ),
                (
                    "gateway CPU per turn (POST + long-poll GET)",
                    f"{gateway_cpu:.2f} ms (target <= 2.5)",
                ),
                ("floor p50", f"{floor.percentile(0.5):.2f} ms"),
            ]
        finally:
            if raw is not None:
                raw.close()
            client.close()
            stack.stop()
    header = (
        f"# Turn benchmark {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.platform()}; "
        f"{args.workers} worker(s) x concurrency {args.concurrency}, offline narrator, "
        f"{n} samples per sequential row"
    )
    return render(rows, extra, header)


class _Cpu:
    """CPU time (utime + stime) that processes (with their pool children) spend from now."""

    def __init__(self, pids: list[int], *, tree: bool = True) -> None:
        self.pids = [p for pid in pids for p in (process_tree(pid) if tree else [pid])]
        self.start = cpu_seconds(self.pids)

    def per(self, count: int) -> float:
        """Milliseconds per one of `count` operations since construction."""
        return (cpu_seconds(self.pids) - self.start) * 1000 / max(1, count)


def _raw_worker(stack: ServiceStack, args: argparse.Namespace) -> None:
    stack.add_worker(
        env={"CELERY_QUEUE": stack.env["RAW_QUEUE"]},
        args=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.raw_celery",
            "worker",
            "--loglevel=INFO",
            "-P",
            "prefork",
            "-c",
            str(args.concurrency),
            "-n",
            "raw@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
    )


@contextlib.contextmanager
def paused(workers: list[Any]) -> Iterator[None]:
    """The worker processes (and their pool children) stopped, so that a row measures the
    gateway without the workers taking the CPU; continued afterwards."""
    pids = [pid for worker in workers for pid in process_tree(worker.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _post_only(player: Player) -> float:
    started = time.perf_counter()
    player.submit()
    return time.perf_counter() - started


class _OnePerThread:
    """Each thread keeps a player of its own: an httpx client shared by threads can close a
    connection it has just handed to another one (encode/httpcore#1110)."""

    def __init__(self, players: list[Player]) -> None:
        self.free = iter(players)
        self.lock = threading.Lock()
        self.mine = threading.local()

    def player(self) -> Player:
        if not hasattr(self.mine, "player"):
            with self.lock:
                self.mine.player = next(self.free)
        who: Player = self.mine.player
        return who


def _get_only(players: _OnePerThread) -> float:
    who = players.player()
    started = time.perf_counter()
    who.http.get(f"/sessions/{who.sid}", headers=who.auth).raise_for_status()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for a smoke run")
    parser.add_argument(
        "--trace-rounds",
        type=int,
        default=3,
        help="rounds of the tracing off/on comparison (0: none; --quick: none, as "
        "bench.traces has a smoke run of its own)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 10)
        args.trace_rounds = 0
    table = run(args)
    if args.trace_rounds > 0:
        load = Load(workers=args.workers, concurrency=args.concurrency)
        table += "\n" + tracing_cost(args.trace_rounds, load, args.redis_url)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("turns", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
