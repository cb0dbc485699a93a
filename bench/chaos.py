"""Chaos run: play many turns over many sessions while killing workers and crashing Redis,
then count what was lost, doubled or misordered.

    python -m bench.chaos                       # 1,000 turns, 50 sessions, 2 workers
    python -m bench.chaos --turns 200 --sessions 10 --worker-kills 2 --redis-restarts 1

It starts everything it needs on free loopback ports: a redis-server (AOF on, fsync always),
Celery worker processes (prefork) and a uvicorn gateway. Clients submit with an
Idempotency-Key and retry on 429/503, as a careful client would. A chaos thread SIGKILLs pool
children and whole workers (a new worker replaces a dead one) and SIGKILLs Redis and starts it
again. Afterwards every session's history is compared with the order of its 202s.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.measure import process_tree, write_result
from bench.stack import ServiceStack
from shared.backends.keys import SessionKeys

logger = logging.getLogger("bench.chaos")


@dataclass
class SessionLog:
    session_id: str
    token: str
    accepted: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass
class Report:
    accepted: int = 0
    applied: int = 0
    lost: int = 0
    doubled: int = 0
    misordered: int = 0
    version_mismatches: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    # (fault, how long a fresh session's first turn took after it). Early in a run that is
    # mostly the time it waits behind every client's queued backlog, fault or no fault.
    recoveries: list[tuple[str, float]] = field(default_factory=list)
    # Killed mid-turn: how long until the dead child's own turn finished elsewhere.
    orphans: list[tuple[str, float]] = field(default_factory=list)
    duration: float = 0.0


class Stack(ServiceStack):
    """The service, with the means to break it."""

    def __init__(self, workdir: Path, workers: int, concurrency: int) -> None:
        super().__init__(
            workdir,
            workers=workers,
            concurrency=concurrency,
            env={
                "NARRATOR_DELAY": "0.05",
                # The default lease: a killed pool child's session must not wait it out.
                "LEASE_TTL": "15",
                "CELERY_VISIBILITY_TIMEOUT": "20",
                "TURN_TIME_LIMIT": "15",
                "REDIS_SOCKET_TIMEOUT": "2",
                "HISTORY_LIMIT": "1000",
                # Every accepted turn's record stays readable for the verification.
                "TURN_RECORDS_KEPT": "1000",
                "MAX_TURNS": "100000",
                "MAX_PENDING_TURNS": "8",
            },
        )

    def kill_pool_child(self, rng: random.Random) -> tuple[str, Orphan | None]:
        """Kill a pool child, one mid-turn if one is within a few seconds (its lease names
        it: <node>/<pid>/...); if it was mid-turn, the turn it was running."""
        deadline = time.monotonic() + 5
        while True:
            holders = self.lease_holders()
            candidates = []
            for worker in self.workers:
                for child in process_tree(worker.pid)[1:]:
                    busy = any(f"/{child}/" in holder for holder in holders)
                    candidates.append((busy, worker, int(child)))
            busy_ones = [c for c in candidates if c[0]]
            if busy_ones or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not candidates:
            return "no pool child to kill", None
        _, worker, pid = rng.choice(busy_ones or candidates)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        what = f"SIGKILL pool child of {worker.name}"
        # The parent says at once whether the child held a session (it releases the lease).
        released = re.compile(rf'"pool process {pid} died mid-turn.*?"session_id": "([^"]+)"')
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            match = released.search(worker.log())
            if match:
                # The turn at the head of its inbox: the one the dead child held up.
                session_id = match.group(1)
                with redis.Redis.from_url(self.redis_url, decode_responses=True) as client:
                    head = client.lindex(SessionKeys(session_id).inbox, 0)
                if isinstance(head, str):
                    return what, Orphan(session_id, head, killed_at)
                break
            time.sleep(0.1)
        return what + " (idle)", None

    def lease_holders(self) -> list[str]:
        with redis.Redis.from_url(self.redis_url, decode_responses=True) as client:
            keys = list(client.scan_iter(match="pocket_portals:session:*:lease", count=1000))
            return [h for h in (client.mget(keys) if keys else []) if isinstance(h, str)]

    def kill_worker(self, rng: random.Random) -> str:
        worker = rng.choice(self.workers)
        worker.signal_group(signal.SIGKILL)
        self.workers.remove(worker)
        self.add_worker()
        return f"SIGKILL whole {worker.name}, started a replacement"

    def crash_redis(self) -> str:
        assert self.redis is not None
        self.redis.kill()
        time.sleep(2)  # an outage long enough for clients to see it
        self.redis.start()
        return "SIGKILL redis, restarted from AOF"


@dataclass
class Orphan:
    """The turn a killed pool child was running."""

    session_id: str
    turn_id: str
    killed_at: float


def orphan_finished(base_url: str, orphan: Orphan, token: str, timeout: float = 180) -> float:
    """Seconds from the kill until the dead child's turn had finished on another process."""
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/sessions/{orphan.session_id}/turns/{orphan.turn_id}"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        while time.monotonic() - orphan.killed_at < timeout:
            try:
                turn = http.get(url, params={"wait": 5}, headers=auth).json()
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if turn.get("status") in ("completed", "failed"):
                return time.monotonic() - orphan.killed_at
    return float("inf")


class Client:
    """One session's player: submits turns in order, retrying as the API asks."""

    def __init__(self, base_url: str, turns: int, rng: random.Random) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.turns = turns
        self.rng = rng
        created = self._retrying(
            lambda: self.http.post("/sessions", json={"seed": rng.randrange(10**6)})
        )
        body = created.json()
        self.log = SessionLog(body["session_id"], body["player_token"])

    def _retrying(self, call: Any, attempts: int = 100) -> httpx.Response:
        for _ in range(attempts):
            try:
                response: httpx.Response = call()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if response.status_code in (429, 503):
                self.log_rejection(response)
                time.sleep(min(2.0, float(response.headers.get("Retry-After", "1"))))
                continue
            return response
        raise RuntimeError("the service did not accept a request after many retries")

    def log_rejection(self, response: httpx.Response) -> None:
        if hasattr(self, "log"):
            self.log.rejected[f"{response.status_code} {response.json()['error']['code']}"] += 1

    def run(self) -> SessionLog:
        auth = {"Authorization": f"Bearer {self.log.token}"}
        for n in range(self.turns):
            body = (
                {"choice_index": 1}
                if n == 0
                else {"action": self.rng.choice(["Look around", "Rest for a moment"])}
            )
            headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
            response = self._retrying(
                lambda b=body, h=headers: self.http.post(
                    f"/sessions/{self.log.session_id}/turns", json=b, headers=h
                )
            )
            if response.status_code != 202:
                self.log.rejected[f"{response.status_code} {response.json()['error']['code']}"] += 1
                continue
            turn_id = response.json()["turn_id"]
            if turn_id not in self.log.accepted:  # a retried POST returns the same turn
                self.log.accepted.append(turn_id)
        self.http.close()
        return self.log


def probe_recovery(base_url: str, timeout: float = 180) -> float:
    """Seconds until a fresh session gets a turn applied end to end."""
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        while time.monotonic() - started < timeout:
            try:
                created = http.post("/sessions")
                if created.status_code != 201:
                    time.sleep(0.2)
                    continue
                body = created.json()
                auth = {"Authorization": f"Bearer {body['player_token']}"}
                turn = http.post(
                    f"/sessions/{body['session_id']}/turns", json={"choice_index": 1}, headers=auth
                )
                if turn.status_code != 202:
                    time.sleep(0.2)
                    continue
                url = f"/sessions/{body['session_id']}/turns/{turn.json()['turn_id']}"
                while time.monotonic() - started < timeout:
                    polled = http.get(url, params={"wait": 5}, headers=auth)
                    if polled.status_code == 200 and polled.json()["status"] == "completed":
                        return time.monotonic() - started
            except httpx.HTTPError:
                time.sleep(0.2)
    return float("inf")


def chaos(
    stack: Stack,
    events: list[str],
    done: threading.Event,
    report: Report,
    seed: int,
    tokens: dict[str, str],
) -> None:
    rng = random.Random(seed)
    rng.shuffle(events)
    for name in events:
        if done.wait(rng.uniform(2.0, 5.0)):
            return
        orphan: Orphan | None = None
        if name == "child":
            what, orphan = stack.kill_pool_child(rng)
        elif name == "worker":
            what = stack.kill_worker(rng)
        else:
            what = stack.crash_redis()
        logger.info("chaos: %s", what)
        if orphan is not None:
            took = orphan_finished(stack.gateway.url, orphan, tokens[orphan.session_id])
            report.orphans.append((what, took))
        report.recoveries.append((what, probe_recovery(stack.gateway.url)))


def verify(base_url: str, logs: list[SessionLog], report: Report, deadline: float) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for log in logs:
            auth = {"Authorization": f"Bearer {log.token}"}
            report.accepted += len(log.accepted)
            report.rejected.update(log.rejected)
            statuses: dict[str, dict[str, Any]] = {}
            for turn_id in log.accepted:
                while True:
                    turn = http.get(
                        f"/sessions/{log.session_id}/turns/{turn_id}",
                        params={"wait": 10},
                        headers=auth,
                    ).json()
                    finished = turn.get("status") in ("completed", "failed")
                    # A pruned record (404) cannot become readable by waiting; the history
                    # below still says whether the turn was applied.
                    pruned = (turn.get("error") or {}).get("code") == "turn_not_found"
                    if finished or pruned or time.monotonic() > deadline:
                        break
                statuses[turn_id] = turn
            state = http.get(f"/sessions/{log.session_id}", headers=auth).json()
            history = [h["turn_id"] for h in state["state"]["conversation_history"]]
            counts = Counter(history)
            report.doubled += sum(c - 1 for c in counts.values() if c > 1)
            applied = [t for t in log.accepted if t in counts]
            report.applied += len(applied)
            for turn_id, turn in statuses.items():
                if turn.get("status") == "failed":
                    report.failed[turn["error"]["code"]] += 1
                elif turn_id not in counts:
                    report.lost += 1
            first_seen = list(dict.fromkeys(history))
            if first_seen != applied:
                report.misordered += 1
            if state["version"] != len(history):
                report.version_mismatches += 1


def render(report: Report, args: argparse.Namespace) -> str:
    rows: list[tuple[str, int | str]] = [
        ("turns accepted (202)", report.accepted),
        ("applied exactly once", report.applied - report.doubled),
        ("lost", report.lost),
        ("doubled", report.doubled),
        ("sessions misordered", report.misordered),
        ("sessions with version != applied", report.version_mismatches),
        ("failed", sum(report.failed.values())),
    ]
    rows += [(f"  failed: {code}", n) for code, n in sorted(report.failed.items())]
    rows += [(f"  retried by client: {code}", n) for code, n in sorted(report.rejected.items())]
    for what, seconds in report.recoveries:
        rows.append((f"new turns served again after: {what}", f"{seconds:.1f} s"))
    for what, seconds in report.orphans:
        rows.append((f"the dead child's own turn finished after: {what}", f"{seconds:.1f} s"))
    width = max(len(r[0]) for r in rows)
    lines = [
        f"# Chaos run {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.platform()}",
        f"load: {args.turns} turns over {args.sessions} sessions, {args.workers} workers x "
        f"concurrency {args.concurrency}; chaos: {args.child_kills} pool-child kills, "
        f"{args.worker_kills} worker kills, {args.redis_restarts} Redis crashes; "
        f"{report.duration:.0f} s",
        "",
        f"| {'what'.ljust(width)} | count |",
        f"|{'-' * (width + 2)}|-------|",
    ]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--child-kills", type=int, default=3)
    parser.add_argument("--worker-kills", type=int, default=1)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    report = Report()
    with tempfile.TemporaryDirectory(prefix="pocket-chaos-") as tmp:
        stack = Stack(Path(tmp), args.workers, args.concurrency)
        try:
            started = time.monotonic()
            per_session = max(1, args.turns // args.sessions)
            rng = random.Random(args.seed)
            clients = [
                Client(stack.gateway.url, per_session, random.Random(rng.random()))
                for _ in range(args.sessions)
            ]
            done = threading.Event()
            events = (
                ["child"] * args.child_kills
                + ["worker"] * args.worker_kills
                + ["redis"] * args.redis_restarts
            )
            tokens = {c.log.session_id: c.log.token for c in clients}
            chaos_thread = threading.Thread(
                target=chaos, args=(stack, events, done, report, args.seed, tokens)
            )
            chaos_thread.start()
            logs: list[SessionLog] = []
            threads = [threading.Thread(target=lambda c=c: logs.append(c.run())) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            chaos_thread.join()  # every planned event happens, even after the load is in
            done.set()
            verify(stack.gateway.url, logs, report, deadline=time.monotonic() + 300)
            report.duration = time.monotonic() - started
        finally:
            stack.stop()
    table = render(report, args)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("chaos", table)
    clean = report.lost == report.doubled == report.misordered == report.version_mismatches == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
