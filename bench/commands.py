"""`python -m bench.commands`: what Redis executes per turn, store and broker apart.

    python -m bench.commands               # 50 offline turns, one at a time, one session
    python -m bench.commands --turns 200
    python -m bench.commands --trace       # and one turn's store commands, in order
    python -m bench.commands --llm --turns 20   # LLM turns, the reply streamed over ~3 s

The store and the broker each run on a redis-server of their own, started here on free
loopback ports, beside one prefork worker and a uvicorn gateway. A player submits a turn and
long-polls it until it is completed, one turn at a time, as a person reading the story would.
Each server's `INFO commandstats` before and after gives the commands per turn, by command:
the scripts' own commands included (Redis counts a script's `redis.call`s in commandstats), so
the figures are what Redis executes, not only the round trips. The store's commands are
deterministic, so figures from two commits compare directly; the broker's include the
worker's idle polling, which depends on how long the run takes. Creating the session is not
counted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from bench.measure import command_calls, write_result
from bench.stack import ServiceStack
from tests.support.fake_llm import fake_llm
from tests.support.player import Player
from tests.support.redis_server import RedisServer

__all__ = ["command_counts", "main"]


def command_counts(url: str) -> Counter[str]:
    with redis.Redis.from_url(url) as client:
        return command_calls(client)


def _play(player: Player, turns: int) -> None:
    for _ in range(turns):
        answer = player.submit({"action": "Look around"})
        assert answer.status_code == 202, answer.text
        done = player.finished(answer.json()["turn_id"], timeout=60)
        assert done["status"] == "completed", done


def _settled_counts(url: str) -> Counter[str]:
    """The counts once the last turn's tail (the worker's release and final look at the
    inbox, after the player already has the result) has run."""
    time.sleep(0.5)
    return command_counts(url)


def _trace_one_turn(url: str, player: Player) -> str:
    """One turn's store commands in the order Redis ran them (MONITOR), a script's own calls
    indented under it: where a turn's commands come from."""
    lines: list[str] = []
    with redis.Redis.from_url(url) as client, client.monitor() as monitor:
        stop = threading.Event()

        def play() -> None:
            try:
                _play(player, 1)
                time.sleep(0.5)  # the worker's release and last look, after the result
            finally:
                stop.set()
                with redis.Redis.from_url(url) as poke:
                    poke.ping()  # MONITOR waits for a command: give it one to see

        threading.Thread(target=play, daemon=True).start()
        for entry in monitor.listen():
            if stop.is_set():
                break
            command = str(entry["command"])
            words = command.split(" ")
            shown = " ".join(w if len(w) <= 48 else w[:20] + "…" for w in words[:6])
            indent = "    " if entry.get("client_type") == "lua" else ""
            lines.append(f"{indent}{shown}")
    return "\n".join(
        [
            "",
            "One turn's store commands, in order (script calls indented):",
            "",
            "```",
            *lines,
            "```",
            "",
        ]
    )


def render(store: Counter[str], broker: Counter[str], turns: int, llm: bool = False) -> str:
    kind = (
        "LLM turns (the fake server streams each reply a chunk every 0.15 s)"
        if llm
        else "offline turns"
    )
    lines = [
        f"# Redis commands per turn {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"{turns} {kind}, one at a time (submit, then long-poll until completed), one "
        "session; store and broker on redis-servers of their own; one prefork worker (-c 1). "
        "Commands executed by Redis, scripts' own calls included.",
        "",
        "| command | store per turn | broker per turn |",
        "|---|---:|---:|",
    ]
    for command in sorted(set(store) | set(broker), key=lambda c: -(store[c] + broker[c])):
        lines.append(
            f"| {command} | {store[command] / turns:.2f} | {broker[command] / turns:.2f} |"
        )
    lines.append(
        f"| **all** | **{sum(store.values()) / turns:.1f}** "
        f"| **{sum(broker.values()) / turns:.1f}** |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument("--trace", action="store_true", help="list one turn's store commands")
    parser.add_argument(
        "--llm",
        action="store_true",
        help="the LLM narrator on the tests' fake server, its reply streamed a chunk every "
        "0.15 s (as a hosted model does), so narration deltas are counted too",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as resources:
        llm = resources.enter_context(fake_llm()) if args.llm else None
        tmp = resources.enter_context(tempfile.TemporaryDirectory(prefix="pocket-commands-"))
        broker = RedisServer(Path(tmp) / "broker", appendonly=False).start()
        store = RedisServer(Path(tmp) / "store", appendonly=False).start()
        # Background work counted per turn would depend on how long a turn takes: the
        # sweeper and the heartbeat run far less often than a turn here.
        env = {
            "CELERY_BROKER_URL": broker.url,
            "SWEEP_INTERVAL": "3600",
            "LEASE_TTL": "60",
            "MAX_TURNS": "100000",
        }
        if llm is not None:
            env |= {
                "NARRATOR": "llm",
                "LLM_MODEL": "openai/slow",
                "LLM_BASE_URL": llm.base_url,
                "LLM_API_KEY": "sk-bench",
                "LLM_FALLBACK": "fail",
            }
        stack = ServiceStack(
            Path(tmp), workers=1, concurrency=1, env=env, redis_url=store.url, appendonly=False
        )
        player: Player | None = None
        try:
            with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
                assert http.get("/readyz").status_code == 200
            player = Player(stack.gateway.url, seed=7)
            # The first turns warm every path (script loading, queue declaration) and
            # create the character; the counted ones are turns of play.
            first = player.submit({"choice_index": 1})
            assert player.finished(first.json()["turn_id"], timeout=60)["status"] == "completed"
            _play(player, 1)
            store_before = _settled_counts(store.url)
            broker_before = command_counts(broker.url)
            _play(player, args.turns)
            store_after = _settled_counts(store.url)
            broker_after = command_counts(broker.url)
            trace = _trace_one_turn(store.url, player) if args.trace else ""
        finally:
            if player is not None:
                player.close()
            stack.stop()
            store.stop()
            broker.stop()
    table = (
        render(store_after - store_before, broker_after - broker_before, args.turns, args.llm)
        + trace
    )
    sys.stdout.write(table)
    if not args.no_write:
        write_result("commands", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
