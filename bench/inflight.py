"""Turns that wait on a slow LLM: how many one worker process keeps in flight, and what each
costs, with a thread pool against the prefork pool (the baseline), measured in the same run.

    python -m bench.inflight                       # 150 players, 3 turns each, LLM calls 2 s
    python -m bench.inflight --players 300 --rounds 2 --threads 350 --llm-delay 2
    python -m bench.inflight --quick               # tiny counts, threads only (the tests run it)

It starts two redis-servers (the session store, and the Celery broker on its own so that the
store's commands are counted alone), the tests' OpenAI-compatible server (each call answers
after `--llm-delay` seconds), one worker process and a gateway. Every player plays one turn
(not measured: the worker's threads and LLM clients grow to size), then `--rounds` turns one
after another, all players at once: the worker holds about `--players` turns in flight for
the whole run. The tables give:

- turn latency as a player sees it (accepted to completed) and the throughput, against
  what the turns in flight would give if nothing but the LLM took time
  (in flight / (LLM calls per turn × delay));
- the most turns running at once in the worker (from its log of each turn's start and end)
  and the most LLM calls waiting at once (the LLM server's count);
- the worker's CPU time per turn (its processes' utime + stime) and its memory idle, at the
  peak, and per turn in flight;
- Redis commands per turn (INFO commandstats): on the store, split into the gateway's
  accepting of a turn (measured with the worker stopped) and the rest (the worker's step,
  its streamed narration, the player's long poll); and on the broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from bench.client import CLIENT_LIMITS, post_turn
from bench.measure import command_calls, cpu_seconds, process_tree, write_result
from bench.stack import ServiceStack
from bench.turns import Row, paused, render, worker_pss_kb
from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.player import Player
from tests.support.processes import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.sse import SseEvent
from tests.support.worker_log import most_turns_running_at_once, turn_spans

logger = logging.getLogger("bench.inflight")


@dataclass
class Run:
    row: Row
    turns: int = 0
    running_at_once: int = 0
    llm_waiting_at_once: int = 0
    llm_calls_per_turn: float = 0.0
    cpu_ms_per_turn: float = 0.0
    pss_idle_kb: int = 0
    pss_peak_kb: int = 0
    store_commands: dict[str, float] = field(default_factory=dict)
    broker_commands_per_turn: float = 0.0


def _commands(client: redis.Redis) -> int:
    return sum(command_calls(client).values())


def _cpu_seconds(worker: CeleryWorker) -> float:
    return cpu_seconds(process_tree(worker.pid))


class _Player:
    """One player with a client of its own: a pool shared by a crowd of threads can close a
    connection it has just handed to another thread (encode/httpcore#1110)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=300, limits=CLIENT_LIMITS)
        self.played = False
        created = self.http.post("/sessions", json={"seed": 3}).json()
        self.auth = {"Authorization": f"Bearer {created['player_token']}"}
        self.base = f"/sessions/{created['session_id']}"

    def submit(self) -> str:
        body = {"action": "Look around"} if self.played else {"choice_index": 1}
        self.played = True
        response = post_turn(self.http, f"{self.base}/turns", body, self.auth)
        return str(response.json()["turn_id"])

    def wait(self, turn_id: str) -> None:
        while True:
            response = self.http.get(
                f"{self.base}/turns/{turn_id}", params={"wait": 30}, headers=self.auth
            )
            turn = response.json()
            if turn["status"] in ("completed", "failed"):
                assert turn["status"] == "completed", turn
                return

    def close(self) -> None:
        self.http.close()

    def play(self, rounds: int) -> list[float]:
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            self.wait(self.submit())
            latencies.append(time.perf_counter() - started)
        return latencies


def _split_store_commands(
    stack: ServiceStack, store: redis.Redis, players: int
) -> dict[str, float]:
    """Store commands per turn: a gateway accepting turns while the worker is stopped, then
    the worker applying them and the players' long polls seeing them finished."""
    crowd = [_Player(stack.gateway.url) for _ in range(players)]
    worker = stack.workers[0]
    with paused([worker]):
        before = _commands(store)
        turn_ids = [player.submit() for player in crowd]
        accepted = _commands(store) - before
    before = _commands(store)
    with ThreadPoolExecutor(max_workers=players) as pool:
        list(pool.map(lambda pair: pair[0].wait(pair[1]), zip(crowd, turn_ids, strict=True)))
    # The worker's last lease release and sweeps settle after the players see the turns.
    time.sleep(1)
    applied = _commands(store) - before
    for player in crowd:
        player.close()
    return {"accept (gateway)": accepted / players, "apply + long poll": applied / players}


def measure(
    llm: FakeLLM,
    workdir: Path,
    *,
    pool: str,
    concurrency: int,
    players: int,
    rounds: int,
    delay: float,
) -> Run:
    broker = RedisServer(workdir / "broker").start()
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": f"openai/wait-{delay}",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-bench",
        "LLM_TIMEOUT": "120",
        "LLM_RETRIES": "1",
        "LLM_FALLBACK": "fail",
        "CELERY_BROKER_URL": broker.url,
        "REDIS_MAX_CONNECTIONS": str(max(200, concurrency + 50)),
        "WORKER_STEP_THREADS": str(max(concurrency, 1)),
    }
    stack = ServiceStack(workdir, workers=0, concurrency=concurrency, env=env, pool=pool)
    try:
        stack.add_worker()
        worker = stack.workers[0]
        store = redis.Redis.from_url(stack.redis_url)
        broker_client = redis.Redis.from_url(broker.url)
        crowd: list[_Player] = []
        try:
            split = _split_store_commands(stack, store, min(players, 20))
            result = Run(
                row=Row(f"{players} players × {rounds} turns, {pool} pool -c {concurrency}")
            )
            crowd += (_Player(stack.gateway.url) for _ in range(players))
            # A round first, not measured: the worker's threads and LLM clients grow to what
            # this many players need once, as in a worker that has been serving for a while.
            with ThreadPoolExecutor(max_workers=players) as warming:
                list(warming.map(lambda p: p.play(1), crowd))
            log_before = len(worker.log())
            llm.max_in_flight = 0
            calls_before = len(llm.requests)
            pss_idle = worker_pss_kb(worker.pid)
            peak = [pss_idle]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.wait(0.5):
                    peak.append(worker_pss_kb(worker.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            commands_before, broker_before = _commands(store), _commands(broker_client)
            cpu_before = _cpu_seconds(worker)
            sampler.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=players) as pool_:
                latencies = list(pool_.map(lambda p: p.play(rounds), crowd))
            result.row.elapsed = time.perf_counter() - started
            cpu = _cpu_seconds(worker) - cpu_before
            sampling.set()
            sampler.join(timeout=5)
        finally:
            for player in crowd:
                player.close()
        time.sleep(1)  # the last log lines and lease releases
        turns = players * rounds
        result.row.samples = [latency for player in latencies for latency in player]
        result.turns = turns
        result.running_at_once = most_turns_running_at_once(turn_spans(worker.log()[log_before:]))
        result.llm_waiting_at_once = llm.max_in_flight
        result.llm_calls_per_turn = (len(llm.requests) - calls_before) / turns
        result.cpu_ms_per_turn = cpu / turns * 1000
        result.pss_idle_kb, result.pss_peak_kb = pss_idle, max(peak)
        # Creating the sessions is in here too: one POST /sessions per player, not per turn.
        result.store_commands = {
            **split,
            "in all, this run": (_commands(store) - commands_before) / turns,
        }
        result.broker_commands_per_turn = (_commands(broker_client) - broker_before) / turns
        store.close()
        broker_client.close()
        return result
    finally:
        stack.stop()
        broker.stop()


@dataclass
class ChunkCost:
    chunks_per_turn: dict[str, float]
    cpu_ms_per_turn: dict[str, float]
    floor_us_per_chunk: float
    client_us_per_chunk: float  # the service's LLM client and narration splitter, in-process

    def service_us_per_chunk(self) -> float | None:
        """The worker's extra CPU for each extra chunk, from the two chunkings of one reply."""
        if not {"tokens", "pieces"} <= set(self.chunks_per_turn):
            return None
        chunks = self.chunks_per_turn["tokens"] - self.chunks_per_turn["pieces"]
        cpu = self.cpu_ms_per_turn["tokens"] - self.cpu_ms_per_turn["pieces"]
        return cpu * 1000 / chunks if chunks else 0.0


def _plain_reader_us_per_chunk(llm: FakeLLM, calls: int) -> float:
    """The floor: a plain httpx stream reader (lines, one JSON decode per chunk) on the same
    fake endpoint and per-token reply, in this thread (the fake server's threads, in this
    process too, are not counted)."""
    body = {
        "model": "wait-0+long+tokens",
        "messages": [{"role": "user", "content": "Your options now:\n1. a\n2. b\n3. c"}],
        "stream": True,
    }
    with httpx.Client(base_url=llm.base_url) as client:

        def read() -> int:
            chunks = 0
            with client.stream("POST", "/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data:") and line[5:].strip() != "[DONE]":
                        json.loads(line[5:])
                        chunks += 1
            return chunks

        read()
        started, chunks = time.thread_time(), 0
        for _ in range(calls):
            chunks += read()
        return (time.thread_time() - started) * 1e6 / max(chunks, 1)


def _client_us_per_chunk(llm: FakeLLM, calls: int, workdir: Path) -> float:
    """The service's side of the same stream, in this thread: `ChatClient` (over the
    service's CrewAI LLM) with the narrator's reply reader as the sink."""
    from shared.game.llm.client import ChatClient
    from shared.game.llm.streaming import ReplyStream
    from shared.settings import Settings

    settings = Settings(
        _env_file=None,
        narrator="llm",
        llm_model="openai/wait-0+long+tokens",
        llm_base_url=llm.base_url,
        llm_api_key="sk-bench",
        crewai_storage_dir=workdir / "crewai",
    )
    client = ChatClient(settings)
    messages = [{"role": "user", "content": "Your options now:\n1. a\n2. b\n3. c"}]

    def read() -> int:
        reader, pieces = ReplyStream(), [0]

        def sink(text: str) -> None:
            pieces[0] += 1
            reader.feed(text)

        client.complete(messages, max_tokens=600, on_chunk=sink)
        reader.finish(expected=3)
        return pieces[0]

    read()
    started, chunks = time.thread_time(), 0
    for _ in range(calls):
        chunks += read()
    return (time.thread_time() - started) * 1e6 / max(chunks, 1)


CHUNK_STYLES = {
    "short": "openai/wait-0",
    "pieces": "openai/wait-0+long",
    "tokens": "openai/wait-0+long+tokens",
}


def chunk_cost(
    llm: FakeLLM, workdir: Path, turns: int, styles: tuple[str, ...] = tuple(CHUNK_STYLES)
) -> ChunkCost:
    """One player's LLM turns back to back (the LLM answers at once): the usual short reply
    in 12-character pieces, then a story six times as long in 12-character pieces and one
    chunk per token (about 200). The worker's CPU per turn for each; the two long ones
    differ only in their number of chunks, so the cost of a chunk shows apart from the rest
    of a turn's."""
    chunks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for style in styles:
        model = CHUNK_STYLES[style]
        env = {
            "NARRATOR": "llm",
            "LLM_MODEL": model,
            "LLM_BASE_URL": llm.base_url,
            "LLM_API_KEY": "sk-bench",
            "LLM_FALLBACK": "fail",
            "MAX_TURNS": "100000",
        }
        stack = ServiceStack(workdir / style, workers=1, concurrency=4, env=env, pool="threads")
        player = _Player(stack.gateway.url)
        try:
            player.play(5)  # the worker warms up: imports, clients, connections
            worker = stack.workers[0]
            before, sent = _cpu_seconds(worker), llm.chunks_sent
            player.play(turns)
            cpu[style] = (_cpu_seconds(worker) - before) * 1000 / turns
            chunks[style] = (llm.chunks_sent - sent) / turns
        finally:
            player.close()
            stack.stop()
    calls = max(20, turns)
    return ChunkCost(
        chunks,
        cpu,
        _plain_reader_us_per_chunk(llm, calls),
        _client_us_per_chunk(llm, calls, workdir),
    )


def _followed_turn(player: Player, body: dict[str, object]) -> tuple[list[SseEvent], float | None]:
    """Play one turn with its event stream open: its events, and when its first
    `narration.delta` arrived (epoch seconds)."""
    sent: list[str] = []
    seen: list[float] = []

    def done(events: list[SseEvent]) -> bool:
        if not seen and sent and any(e.event == "narration.delta" for e in events):
            seen.append(time.time())
        return bool(sent) and any(
            e.event in ("turn.completed", "turn.failed") and e.data.get("turn_id") == sent[0]
            for e in events
        )

    events = player.events(
        until=done,
        on_open=lambda: sent.append(player.submit(body).json()["turn_id"]),
        timeout=120,
    )
    return events, (seen[0] if seen else None)


def first_token(llm: FakeLLM, workdir: Path, turns: int) -> tuple[list[float], float]:
    """One player's LLM turns, each followed live on its event stream: how long after the
    fake server sent the Narrator's first chunk the player saw the turn's first
    `narration.delta` (the time to first token the service adds: the reply reader's hold-back,
    the worker's publish, the gateway's read and the SSE write), in ms; and LLM tokens per
    turn."""
    env = {
        "NARRATOR": "llm",
        "LLM_MODEL": "openai/tokens",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-bench",
        "LLM_FALLBACK": "fail",
        "MAX_TURNS": "100000",
    }
    stack = ServiceStack(workdir, workers=1, concurrency=4, env=env, pool="threads")
    player = Player(stack.gateway.url, seed=3)
    added: list[float] = []
    tokens = 0
    try:
        for number in range(turns + 2):  # two turns first to warm the worker up
            before = len(llm.requests)
            body: dict[str, object] = (
                {"choice_index": 1} if number < 2 else {"action": "Look around"}
            )
            events, delta_at = _followed_turn(player, body)
            told = [
                r
                for r in llm.requests[before:]
                if "Narrator" in str(r["messages"][0]["content"]) and "first_chunk_at" in r
            ]
            if number < 2 or not told or delta_at is None:
                continue
            added.append((delta_at - told[-1]["first_chunk_at"]) * 1000)
            usage = events[-1].data.get("result", {}).get("usage") or {}
            tokens += int(usage.get("total_tokens") or 0)
    finally:
        player.close()
        stack.stop()
    return added, tokens / max(len(added), 1)


def _first_token_extra(added: list[float], tokens_per_turn: float) -> list[tuple[str, str]]:
    if not added:
        return [("time to first token added by the service", "no turn measured")]
    ordered = sorted(added)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return [
        (
            "time to first token added by the service (first delta at the player − first "
            f"chunk sent by the LLM), {len(added)} turns: p50 / p99",
            f"{at(0.5):.1f} ms / {at(0.99):.1f} ms",
        ),
        ("LLM tokens per turn (all agents, prompt + completion)", f"{tokens_per_turn:.0f}"),
    ]


def _chunk_extra(cost: ChunkCost) -> list[tuple[str, str]]:
    labels = {
        "short": "LLM turn back to back (2 calls), short reply in 12-char pieces",
        "pieces": "story six times as long, 12-char pieces",
        "tokens": "per-token stream (one chunk per token)",
    }
    rows = [
        (
            f"{labels[style]}: chunks / worker CPU per turn",
            f"{chunks:.1f} / {cost.cpu_ms_per_turn[style]:.2f} ms"
            + (" (target <= 6)" if style == "short" else ""),
        )
        for style, chunks in cost.chunks_per_turn.items()
    ]
    rows.append(
        (
            "CPU per streamed chunk, in-process: the service's LLM client and splitter / a plain "
            "httpx reader (floor) / above the floor",
            f"{cost.client_us_per_chunk:.1f} µs / {cost.floor_us_per_chunk:.1f} µs / "
            f"{cost.client_us_per_chunk - cost.floor_us_per_chunk:.1f} µs (target <= 15)",
        )
    )
    service = cost.service_us_per_chunk()
    if service is not None:
        rows.append(
            (
                "worker CPU per streamed chunk, from the two long rows (whole turns: about "
                "±20 µs of noise)",
                f"{service:.1f} µs",
            )
        )
    return rows


def _extra(pool: str, result: Run, delay: float) -> list[tuple[str, str]]:
    rate = result.row.throughput
    floor = result.llm_calls_per_turn * delay
    ideal = result.running_at_once / floor if floor else 0.0
    grown = max(result.pss_peak_kb - result.pss_idle_kb, 0)
    per_turn = grown / max(result.running_at_once, 1)
    store = "; ".join(f"{name} {value:.1f}" for name, value in result.store_commands.items())
    return [
        (
            f"{pool}: turns running at once / LLM calls waiting at once",
            f"{result.running_at_once} / {result.llm_waiting_at_once}",
        ),
        (
            f"{pool}: throughput vs in flight / LLM time",
            f"{rate:.1f}/s vs {ideal:.1f}/s ({result.running_at_once} / "
            f"({result.llm_calls_per_turn:.2f} calls × {delay} s))",
        ),
        (f"{pool}: worker CPU per turn", f"{result.cpu_ms_per_turn:.1f} ms"),
        (
            f"{pool}: worker PSS idle / at peak / per turn in flight",
            f"{result.pss_idle_kb / 1024:.0f} MiB / {result.pss_peak_kb / 1024:.0f} MiB / "
            f"{per_turn:.0f} KiB",
        ),
        (f"{pool}: store commands per turn", store),
        (f"{pool}: broker commands per turn", f"{result.broker_commands_per_turn:.1f}"),
    ]


def run(args: argparse.Namespace) -> str:
    rows: list[Row] = []
    extra: list[tuple[str, str]] = []
    with fake_llm() as llm, tempfile.TemporaryDirectory(prefix="portals-inflight-") as tmp:
        runs = [
            ("prefork", 2, min(args.players, 4)),  # the baseline: one turn per child
            ("threads", args.threads, args.players),
        ]
        if args.quick:
            # A smoke run measures the thread pool only: the prefork run is the same code
            # with another pool, and each run is a stack of its own to start.
            runs = runs[1:]
        for pool, concurrency, players in runs:
            logger.info("measuring %s -c %d with %d players", pool, concurrency, players)
            result = measure(
                llm,
                Path(tmp) / pool,
                pool=pool,
                concurrency=concurrency,
                players=players,
                rounds=args.rounds,
                delay=args.llm_delay,
            )
            result.row.note = f"{result.llm_calls_per_turn:.2f} LLM calls per turn"
            rows.append(result.row)
            extra += _extra(pool, result, args.llm_delay)
        logger.info("measuring the cost of a streamed chunk")
        # A smoke run (--quick) measures the per-token stream only: each style is a stack.
        styles = ("tokens",) if args.quick else tuple(CHUNK_STYLES)
        extra += _chunk_extra(chunk_cost(llm, Path(tmp) / "chunks", args.chunk_turns, styles))
        logger.info("measuring the time to first token the service adds")
        turns = 3 if args.quick else 40
        extra += _first_token_extra(*first_token(llm, Path(tmp) / "first-token", turns))
    header = (
        f"# In-flight LLM turns per worker process ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; each LLM call answers after {args.llm_delay} s.\n"
        f"Command: `python -m bench.inflight --players {args.players} --rounds {args.rounds} "
        f"--threads {args.threads} --llm-delay {args.llm_delay}`"
    )
    return render(rows, extra, header)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--llm-delay", type=float, default=2.0)
    parser.add_argument("--chunk-turns", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.players, args.rounds, args.threads, args.llm_delay = 6, 1, 8, 0.2
        args.chunk_turns = 3
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    table = run(args)
    sys.stdout.write(table)
    if not args.quick:
        path = write_result("inflight", table)
        sys.stderr.write(f"written to {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
