"""Metrics across processes (Prometheus multiprocess mode): a worker's pool processes (a
thread pool: the worker itself) count and its main process serves the sum; a gateway of
several uvicorn processes serves the sum of theirs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import CeleryWorker, Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _total(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_worker_serves_its_pools_turn_metrics(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    tmp_path: Path,
    pool: str,
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    worker = worker_factory(
        {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WORKER_METRICS_PORT": str(port)},
        pool=pool,
    )
    gateway = gateway_factory()
    player = Player(gateway.url)
    try:
        bodies = ({"choice_index": 1}, {"action": "Look around"}, {"choice_index": 1})
        for number, body in enumerate(bodies):
            sent = player.submit(body, **{"X-Request-ID": f"trace-{number}"})
            assert sent.status_code == 202, sent.text
            assert player.turn(sent.json()["turn_id"], wait=30)["status"] == "completed"
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> str | None:
            try:
                text = httpx.get(url, timeout=5).text
            except httpx.HTTPError:
                return None
            # Counts land in the pool processes' files as each turn commits.
            return text if _total(text, "pocket_portals_turns_completed_total") >= 3 else None

        text = wait_until(scraped, timeout=30, what="worker metrics with three turns")
        assert _total(text, "pocket_portals_turns_completed_total") == 3
        assert _total(text, "pocket_portals_turn_processing_seconds_count") == 3
        assert _total(text, "pocket_portals_turn_queue_wait_seconds_count") == 3
        assert player.session_id not in text

        # The worker's log: JSON lines, one per completed turn with its ids and timing.
        completed = [
            line
            for line in map(_json_or_none, worker.log().splitlines())
            if line and line["message"].startswith("turn ") and "duration_ms" in line
        ]
        assert len(completed) == 3
        assert all(line["session_id"] == player.session_id for line in completed)
        assert all(line["duration_ms"] >= 0 and line["turn_id"] for line in completed)
        # The request id that accepted each turn follows it into the worker's lines.
        assert {line["correlation_id"] for line in completed} == {"trace-0", "trace-1", "trace-2"}
    finally:
        player.close()


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None  # Celery's banner and anything else not logged through logging
    return parsed if isinstance(parsed, dict) else None


def test_a_gateway_of_several_processes_serves_the_sum_of_their_counts(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    """`uvicorn --workers 2` with PROMETHEUS_MULTIPROC_DIR: whichever process answers the
    scrape, `/metrics` counts the requests both processes served."""
    metrics_dir = tmp_path / "gateway-metrics"
    metrics_dir.mkdir()
    gateway = gateway_factory(
        {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        args=[sys.executable, "-m", "uvicorn", "api.main:app", "--workers", "2"],
    )

    def processes_that_created_sessions() -> int:
        # Each process counts into its own counter_<pid>.db.
        return sum(
            any(
                sample.name == "pocket_portals_sessions_created_total" and sample.value > 0
                for family in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
                for sample in family.samples
            )
            for path in metrics_dir.glob("counter_*.db")
        )

    created = 0

    def both_processes_counted() -> bool:
        nonlocal created
        # A new connection each time, so the kernel may hand it to either process.
        response = httpx.post(f"{gateway.url}/sessions", timeout=30)
        assert response.status_code == 201, response.text
        created += 1
        return processes_that_created_sessions() >= 2

    wait_until(both_processes_counted, timeout=120, what="sessions created by both processes")
    for _ in range(4):  # each scrape on a new connection, whichever process takes it
        text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
        assert _total(text, "pocket_portals_sessions_created_total") == created
        created_requests = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "pocket_portals_http_requests_total"
            and sample.labels == {"method": "POST", "route": "/sessions", "status": "201"}
        ]
        assert created_requests == [created]
