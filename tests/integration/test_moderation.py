"""The moderation step in a real worker, against the loopback fake's moderations endpoint: a
flagged typed action becomes an in-story redirect (never an error), counted, never logged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_llm import FLAGGED_WORDS, FakeLLM, fake_llm
from tests.support.metrics import sample_total
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import CeleryWorker, Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def test_a_flagged_action_is_redirected_in_the_story(
    server: FakeLLM,
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    tmp_path: Path,
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    worker = worker_factory(
        {
            "MODERATION_URL": f"{server.base_url}/moderations",
            "MODERATION_API_KEY": "sk-moderation-secret",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WORKER_METRICS_PORT": str(port),
        }
    )
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        player.play({"choice_index": 3})
        player.play({"choice_index": 1})
        before = player.state()
        typed = f"Shout {FLAGGED_WORDS} at the sky"
        turn = player.play({"action": typed})
        assert turn["status"] == "completed"
        assert "no place in this tale" in turn["result"]["narrative"]
        after = player.state()
        assert after["version"] == before["version"] + 1
        for field in ("adventure_turn", "health_current", "location", "current_choices"):
            assert after["state"][field] == before["state"][field], field
        assert server.moderation_inputs[-1] == typed
        assert typed not in worker.log() and FLAGGED_WORDS not in worker.log()
        assert player.play({"choice_index": 1})["status"] == "completed"  # the game goes on
        assert len(server.moderation_inputs) == 1  # chosen options are not checked

        def flagged() -> float | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            labels = {"category": "harassment", "source": "endpoint"}
            counted = sample_total(text, "pocket_portals_moderation_flagged_total", labels)
            return counted or None

        assert wait_until(flagged, timeout=30, what="the flagged turn counted") == 1
    finally:
        player.close()
