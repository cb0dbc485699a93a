"""`python -m bench.abuse`: attacks on the edge, each for a bounded time on loopback, beside
an honest player.

The stack is a redis-server, a Celery worker and a uvicorn gateway behind Debian's nginx with
docker/nginx.conf, as compose runs them, with the service's default limits. Each attack comes
from an address of its own (127.0.0.2, .3, ...) and the honest player from 127.0.0.1, so each
is its own client to the per-address limits. For each attack the honest player plays a turn
a second (submit, then long-poll until completed, as a person reading the story would) while
it lasts; the table gives what the attacker sent and got,
the player's turn latency (p50/p99) and errors, and the gateway's peak open files and memory.
A quiet row (no attack) is the baseline measured in the same run. CPU % is the CPU time the
gateway, the worker (with its pool) and this load generator used over the attack, in % of one
core: on a 2-core machine the attacker's own CPU is taken from the service too.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.measure import cpu_seconds, process_tree, write_result
from bench.stack import ServiceStack
from tests.support.nginx import NginxProxy
from tests.support.player import Player

__all__ = ["main"]

# A person reads a turn before playing the next.
THINK_SECONDS = 1.0


@dataclass
class Row:
    attack: str
    sent: int = 0
    got: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    peak_fds: int = 0
    peak_rss_kib: int = 0
    # CPU seconds the gateway and the worker (all its processes) used during the attack.
    gateway_cpu: float = 0.0
    worker_cpu: float = 0.0
    # ... and this process: the attacker and the honest player share the machine's cores.
    load_cpu: float = 0.0
    seconds: float = 0.0


_attacker = threading.local()


def _address() -> str:
    """This attack's source address (set by run_attack in the attacker's thread)."""
    return str(getattr(_attacker, "address", "127.0.0.2"))


def _attacker_client(base_url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=_address(), retries=0)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def _honest(url: str, row: Row, stop: threading.Event) -> None:
    player = Player(url, timeout=60)
    try:
        while not stop.wait(THINK_SECONDS):
            started = time.monotonic()
            try:
                accepted = player.submit({"choice_index": 1})
                if accepted.status_code != 202:
                    row.errors += 1
                    row.got[f"honest {accepted.status_code}"] += 1
                    continue
                turn = player.finished(accepted.json()["turn_id"], timeout=60)
                if turn["status"] != "completed":
                    row.errors += 1
                    continue
            except (httpx.HTTPError, AssertionError) as exc:
                row.errors += 1
                row.got[f"honest {type(exc).__name__}"] += 1
                continue
            row.latencies.append(time.monotonic() - started)
            if not turn["result"]["choices"]:
                player.close()
                player = Player(url, timeout=60)  # the adventure ended: a new one
    finally:
        player.close()


def _watch_gateway(pid: int, row: Row, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        try:
            row.peak_fds = max(row.peak_fds, len(os.listdir(f"/proc/{pid}/fd")))
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    row.peak_rss_kib = max(row.peak_rss_kib, int(line.split()[1]))
        except OSError:
            return


def _slowloris(url: str, row: Row, stop: threading.Event, count: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            if stop.is_set():
                break
            try:
                connection = socket.create_connection(
                    (host, int(port)), timeout=5, source_address=(_address(), 0)
                )
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: portals\r\nX-Slow: ")
                held.append(connection)
                row.sent += 1
            except OSError:
                row.got["connect refused"] += 1
        stop.wait()
        for connection in held:
            connection.setblocking(False)
            try:
                closed = connection.recv(1) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            row.got["closed by the front" if closed else "still held"] += 1
    finally:
        for connection in held:
            connection.close()


def _session_flood(url: str, row: Row, stop: threading.Event) -> None:
    with _attacker_client(url) as http:
        while not stop.is_set():
            try:
                row.got[str(http.post("/sessions").status_code)] += 1
            except httpx.HTTPError as exc:
                row.got[type(exc).__name__] += 1
            row.sent += 1


def _turn_flood(url: str, row: Row, stop: threading.Event, sessions: int) -> None:
    """One address, all the sessions its creation budget gives, turns sent on every one of
    them as fast as the service takes them (a refused turn is sent again at once)."""
    with _attacker_client(url) as http:
        auths: list[tuple[str, dict[str, str]]] = []
        for _ in range(sessions):
            created = http.post("/sessions")
            row.sent += 1
            if created.status_code != 201:
                row.got[f"session {created.status_code}"] += 1
                continue
            body = created.json()
            path = f"/sessions/{body['session_id']}/turns"
            auths.append((path, {"Authorization": f"Bearer {body['player_token']}"}))
        while auths and not stop.is_set():
            for path, auth in auths:
                try:
                    answer = http.post(path, json={"action": "Look around"}, headers=auth)
                except httpx.HTTPError as exc:
                    row.got[type(exc).__name__] += 1
                    continue
                row.sent += 1
                code = answer.json().get("error", {}).get("code", "") if answer.is_error else ""
                row.got[f"{answer.status_code} {code}".strip()] += 1


def _stream_flood(url: str, row: Row, stop: threading.Event, count: int) -> None:
    with _attacker_client(url) as http:
        created = http.post("/sessions")
        if created.status_code != 201:
            row.got[f"session {created.status_code}"] += 1
            return
        session = created.json()
    path = f"{url}/sessions/{session['session_id']}/events"
    headers = {"Authorization": f"Bearer {session['player_token']}"}
    lock = threading.Lock()

    address = _address()

    def hold() -> None:
        _attacker.address = address
        try:
            with (
                _attacker_client(url) as http,
                http.stream("GET", path, headers=headers, timeout=None) as response,
            ):
                with lock:
                    row.got[str(response.status_code)] += 1
                if response.status_code != 200:
                    return
                for _ in response.iter_lines():
                    if stop.is_set():
                        return
        except httpx.HTTPError as exc:
            with lock:
                row.got[type(exc).__name__] += 1

    threads = []
    for _ in range(count):
        if stop.is_set():
            break
        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        threads.append(thread)
        row.sent += 1
        time.sleep(0.005)  # a steady opening rate, not one burst
    stop.wait()
    for thread in threads:
        thread.join(timeout=20)


def _large_bodies(url: str, row: Row, stop: threading.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    chunk = b"x" * 65536
    while not stop.is_set():
        try:
            with socket.create_connection(
                (host, int(port)), timeout=10, source_address=(_address(), 0)
            ) as connection:
                connection.sendall(
                    b"POST /sessions HTTP/1.1\r\nHost: portals\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                sent = 0
                with_answer = b""
                while sent < 50 * 1024 * 1024:  # 50 MB offered
                    try:
                        connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    except OSError:
                        break
                    sent += len(chunk)
                connection.settimeout(5)
                try:
                    with_answer = connection.recv(64)
                except OSError:
                    pass
                status = with_answer.split(b" ")[1].decode() if b" " in with_answer else "none"
                row.got[f"{status} after {sent // 1024} KiB"] += 1
                row.sent += 1
        except OSError as exc:
            row.got[type(exc).__name__] += 1


Attack = Callable[[str, Row, threading.Event], None]


def _attacks(args: argparse.Namespace) -> list[tuple[str, Attack | None]]:
    return [
        ("quiet (no attack)", None),
        (
            f"slowloris: {args.slow_connections} connections trickling headers",
            lambda url, row, stop: _slowloris(url, row, stop, args.slow_connections),
        ),
        ("session flood: POST /sessions as fast as one client can", _session_flood),
        (
            f"stream flood: {args.streams} event streams of one session",
            lambda url, row, stop: _stream_flood(url, row, stop, args.streams),
        ),
        ("large chunked bodies: 50 MB offered per request", _large_bodies),
        (
            "turn flood: 10 sessions of one client, turns sent as fast as they are taken",
            lambda url, row, stop: _turn_flood(url, row, stop, 10),
        ),
    ]


def run_attack(
    name: str,
    attack: Attack | None,
    front: NginxProxy,
    stack: ServiceStack,
    seconds: float,
    address: str,
) -> Row:
    row = Row(name)
    gateway_pid, worker_pid = stack.gateway.pid, stack.workers[0].pid
    cpu_before = (
        cpu_seconds([gateway_pid]),
        cpu_seconds(process_tree(worker_pid)),
        time.monotonic(),
    )
    load_before = time.process_time()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_honest, args=(front.url, row, stop)),
        threading.Thread(target=_watch_gateway, args=(gateway_pid, row, stop)),
    ]
    if attack is not None:

        def attack_from(url: str, row: Row, stop: threading.Event) -> None:
            _attacker.address = address
            attack(url, row, stop)

        threads.append(threading.Thread(target=attack_from, args=(front.url, row, stop)))
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)
    row.gateway_cpu = cpu_seconds([gateway_pid]) - cpu_before[0]
    row.worker_cpu = cpu_seconds(process_tree(worker_pid)) - cpu_before[1]
    row.seconds = time.monotonic() - cpu_before[2]
    row.load_cpu = time.process_time() - load_before
    return row


def render(rows: list[Row], args: argparse.Namespace) -> str:
    def ms(values: list[float], q: float) -> str:
        if not values:
            return "-"
        ordered = sorted(values)
        return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.0f}"

    lines = [
        f"# Abuse run {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.seconds:.0f} s per attack; nginx "
        "(docker/nginx.conf) in front of one uvicorn gateway and one prefork worker (-c 2), "
        f"default limits; each attack from an address of its own, the honest player (a turn "
        f"every {THINK_SECONDS:.0f} s) from 127.0.0.1",
        "",
        "| attack | sent | attacker got | honest turns | turn p50 ms | turn p99 ms "
        "| honest errors | gateway fds (peak) | gateway RSS MiB (peak) "
        "| gateway CPU % | worker CPU % | load generator CPU % |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        got = ", ".join(f"{what}: {n}" for what, n in row.got.most_common(4)) or "-"
        lines.append(
            f"| {row.attack} | {row.sent} | {got} | {len(row.latencies)} "
            f"| {ms(row.latencies, 0.5)} | {ms(row.latencies, 0.99)} | {row.errors} "
            f"| {row.peak_fds} | {row.peak_rss_kib / 1024:.0f} "
            f"| {100 * row.gateway_cpu / max(row.seconds, 1e-9):.0f} "
            f"| {100 * row.worker_cpu / max(row.seconds, 1e-9):.0f} "
            f"| {100 * row.load_cpu / max(row.seconds, 1e-9):.0f} |"
        )
    quiet = rows[0].latencies
    if quiet:
        lines += ["", f"quiet turn p50: {1000 * statistics.median(quiet):.0f} ms"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15, help="per attack (at most 30)")
    parser.add_argument("--slow-connections", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, 30)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 16384)), hard))
    rows = []
    with tempfile.TemporaryDirectory(prefix="pocket-abuse-") as tmp:
        # The service's own limits, not the benchmarks' usual "off".
        env = {"RATE_LIMIT_PER_MINUTE": "600", "SESSION_CREATE_PER_MINUTE": "10"}
        stack = ServiceStack(Path(tmp), workers=1, concurrency=2, env=env)
        front = NginxProxy(Path(tmp) / "nginx", f"127.0.0.1:{stack.gateway.port}").start()
        try:
            for number, (name, attack) in enumerate(_attacks(args), start=2):
                address = f"127.0.0.{number}"
                rows.append(run_attack(name, attack, front, stack, args.seconds, address))
        finally:
            front.stop()
            stack.stop()
    table = render(rows, args)
    sys.stdout.write(table)
    if not args.no_write:
        write_result("abuse", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
