"""The nginx front (docker/nginx.conf) under a slow-connection attack: thousands of
connections that trickle their headers are held by nginx, not by the gateway, and an honest
player goes on playing through the same front. Also: the front speaks the service's error
format, keeps /metrics to the inside and passes the real client address."""

from __future__ import annotations

import resource
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.nginx import NginxProxy, nginx_binary
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SLOW_CONNECTIONS = 2000


@pytest.fixture
def front_factory(
    tmp_path: Path, gateway_factory: Callable[..., Gateway]
) -> Iterator[Callable[..., NginxProxy]]:
    """nginx with the project's config in front of a fresh gateway (env: its settings)."""
    if nginx_binary() is None:
        pytest.fail("These tests run Debian's nginx: ./scripts/test installs it.")
    fronts: list[NginxProxy] = []

    def make(env: dict[str, str] | None = None) -> NginxProxy:
        gateway = gateway_factory(env)
        front = NginxProxy(tmp_path / f"nginx{len(fronts)}", f"127.0.0.1:{gateway.port}")
        fronts.append(front)
        return front.start()

    yield make
    for front in fronts:
        front.stop()


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CONNECTIONS + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.fail(f"this test opens {SLOW_CONNECTIONS} sockets; the hard fd limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _established(port: int) -> int:
    """Established TCP connections to a local listening port (Linux's /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def test_slow_connections_are_held_by_the_front_and_players_go_on(
    front_factory: Callable[..., NginxProxy],
    worker_factory: Callable[..., CeleryWorker],
    enough_file_descriptors: None,
) -> None:
    worker_factory()
    proxy = front_factory()
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            # A request line and half a header, then nothing: the classic slowloris.
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: portals\r\nX-Slow: ")
            slow.append(connection)
        # nginx holds them: the gateway behind it has a handful of connections, not thousands.
        gateway_port = int(proxy.upstream.rsplit(":", 1)[1])
        assert _established(gateway_port) < 100
        # While every one of them is held open, a player plays a whole turn through the front.
        assert httpx.get(f"{proxy.url}/healthz", timeout=10).status_code == 200
        player = Player(proxy.url, seed=21)
        try:
            turn = player.play({"choice_index": 1}, wait=30)
            assert turn["result"]["state_version"] == 1
        finally:
            player.close()
    finally:
        for connection in slow:
            connection.close()


def test_the_front_speaks_the_error_format_and_passes_the_real_address(
    front_factory: Callable[..., NginxProxy],
) -> None:
    proxy = front_factory({"SESSION_CREATE_PER_MINUTE": "2"})
    hidden = httpx.get(f"{proxy.url}/metrics", timeout=10)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"
    too_large = httpx.post(f"{proxy.url}/sessions", content=b"x" * 20_000, timeout=10)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"
    # The front overwrites X-Forwarded-For: a client rotating it is still one client to the
    # gateway's budgets (here: two new sessions a minute, so five straddle at most two
    # minutes' windows and at least one is refused).
    answers = [
        httpx.post(
            f"{proxy.url}/sessions", headers={"X-Forwarded-For": f"198.51.100.{n}"}, timeout=10
        ).status_code
        for n in range(5)
    ]
    assert answers.count(201) <= 4 and 429 in answers, answers


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as started:
        yield started


def test_the_front_drops_a_clients_trace_context(
    receiver: Receiver,  # first: it outlives the gateway, which flushes its spans as it stops
    front_factory: Callable[..., NginxProxy],
) -> None:
    """A player's `traceparent` would choose the trace id and force sampling (and `baggage`
    would ride into every span): the front drops them, so the gateway starts the trace."""
    chosen = "5bf92f3577b34da6a3ce929d0e0e4736"
    proxy = front_factory(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_SDK_DISABLED": "false",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "1",
        }
    )
    created = httpx.post(
        f"{proxy.url}/sessions",
        headers={
            "traceparent": f"00-{chosen}-00f067aa0ba902b7-01",
            "baggage": "player=mallory",
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    posts = wait_until(
        lambda: [s for s in receiver.snapshot() if s.name.startswith("POST /sessions")] or None,
        timeout=30,
        what="the request's span",
        interval=0.2,
    )
    assert all(span.trace_id != chosen and not span.parent_id for span in posts), posts


TRACE_HEADERS = {
    "traceparent": "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=chosen",
    "baggage": "player=mallory",
    "b3": "5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "x-b3-traceid": "5bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-parentspanid": "00f067aa0ba902b6",
    "x-b3-sampled": "1",
    "x-b3-flags": "1",
    "uber-trace-id": "5bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
}


@pytest.fixture
def echo_upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback HTTP server standing where the gateway would: it answers the front's
    readiness probe (`GET /healthz`), and a POST with 204, keeping its headers, lower-cased."""
    seen: list[dict[str, str]] = []

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append({name.lower(): value for name, value in self.headers.items()})
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_front_passes_on_no_trace_header_of_any_propagator(
    tmp_path: Path, echo_upstream: tuple[str, list[dict[str, str]]]
) -> None:
    """W3C's trace context and baggage, B3's single and multiple headers and Jaeger's: none
    reaches the upstream, and the request's own headers still do."""
    if nginx_binary() is None:
        pytest.fail("These tests run Debian's nginx: ./scripts/test installs it.")
    upstream, seen = echo_upstream
    front = NginxProxy(tmp_path / "nginx", upstream)
    try:
        front.start()  # inside: a front that never answered is stopped too
        answer = httpx.post(
            f"{front.url}/sessions",
            headers={**TRACE_HEADERS, "X-Request-ID": "req-1"},
            timeout=10,
        )
    finally:
        front.stop()
    assert answer.status_code == 204, answer.text
    [passed] = seen
    assert passed["x-request-id"] == "req-1"
    assert passed["x-forwarded-for"] == "127.0.0.1"
    assert set(TRACE_HEADERS).isdisjoint(passed), passed
