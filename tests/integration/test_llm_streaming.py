"""The LLM narrator in real worker processes, streamed to players over SSE: deltas before
completion, resumable mid-turn, restarted after a crash, and the failure policies."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_reliability import finish, history_ids, turn_pid
from tests.support.fake_llm import NARRATIVE, FakeLLM, fake_llm
from tests.support.metrics import sample_total
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import CeleryWorker, Gateway
from tests.support.sse import SseEvent
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SECRET = "sk-integration-secret-key"
WorkerFactory = Callable[..., CeleryWorker]
GatewayFactory = Callable[..., Gateway]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def llm_env(server: FakeLLM, model: str, **extra: str) -> dict[str, str]:
    return {
        "NARRATOR": "llm",
        "LLM_MODEL": f"openai/{model}",
        "LLM_BASE_URL": server.base_url,
        "LLM_API_KEY": SECRET,
        "LLM_TIMEOUT": "5",
        "LLM_RETRY_BACKOFF": "0.1",
        **extra,
    }


def completed(turn_id: str) -> Callable[[list[SseEvent]], bool]:
    return lambda evs: any(
        e.event in {"turn.completed", "turn.failed"} and e.data["turn_id"] == turn_id for e in evs
    )


def story_after_last_restart(events: list[SseEvent], turn_id: str) -> str:
    pieces: list[str] = []
    for event in events:
        if event.data.get("turn_id") != turn_id:
            continue
        if event.event == "turn.restarted":
            pieces = []
        elif event.event == "narration.delta":
            pieces.append(event.data["text"])
    return "".join(pieces)


def play_to_exploration(player: Player) -> None:
    player.play({"choice_index": 3})
    player.play({"choice_index": 1})


def test_deltas_stream_before_completion_and_add_up_to_the_narrative(
    llm_server: FakeLLM, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    # A chunk every 0.15 s: more than NARRATION_DELTA_INTERVAL apart, so each is its own delta.
    worker = worker_factory(llm_env(llm_server, "slow"))
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        play_to_exploration(player)
        submitted: list[str] = []
        events = player.events(
            until=lambda evs: bool(submitted) and completed(submitted[0])(evs),
            on_open=lambda: threading.Thread(
                target=lambda: submitted.append(
                    player.submit({"choice_index": 1}).json()["turn_id"]
                )
            ).start(),
        )
        names = [e.event for e in events]
        assert names.count("narration.delta") > 3
        assert names.index("narration.delta") < names.index("turn.completed")
        result = events[-1].data["result"]
        assert story_after_last_restart(events, submitted[0]) == result["narrative"]
        # Each piece names its speaker; the result lists each agent's words, Narrator first.
        speakers = [e.data["speaker"] for e in events if e.event == "narration.delta"]
        assert speakers[0] == "narrator"
        assert set(speakers) == {line["speaker"] for line in result["lines"]}
        assert result["lines"][0]["speaker"] == "narrator"
        assert "\n\n".join(line["text"] for line in result["lines"]) == result["narrative"]
        assert result["narrator"] == "llm" and result["usage"]["completion_tokens"] > 0
        state = player.state()["state"]
        assert all(c.startswith("Carefully: ") for c in state["current_choices"])
        player.play({"choice_index": 1})  # a reworded choice still means the rules' choice
        assert SECRET not in worker.log()
    finally:
        player.close()


def test_a_client_reconnecting_mid_turn_gets_the_deltas_it_missed(
    llm_server: FakeLLM, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    worker_factory(llm_env(llm_server, "slow"))
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        play_to_exploration(player)
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        first = player.events(
            last_event_id="0",
            until=lambda evs: any(
                e.event == "narration.delta" and e.data["turn_id"] == turn_id for e in evs
            ),
        )
        assert first[-1].event == "narration.delta"  # left mid-turn, after a delta
        rest = player.events(last_event_id=first[-1].id, until=completed(turn_id))
        assert rest[0].event == "narration.delta"
        everything = first + rest
        assert story_after_last_restart(everything, turn_id) == rest[-1].data["result"]["narrative"]
    finally:
        player.close()


def test_a_worker_dying_mid_stream_restarts_the_turn_and_applies_it_once(
    llm_server: FakeLLM, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    worker = worker_factory(llm_env(llm_server, "slow", LEASE_TTL="3"))
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        play_to_exploration(player)
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        seen = player.events(
            last_event_id="0",
            until=lambda evs: any(
                e.event == "narration.delta" and e.data["turn_id"] == turn_id for e in evs
            ),
        )
        os.kill(turn_pid(worker, turn_id), signal.SIGKILL)
        # Followed live: once the turn has finished, only its turn.completed is retained.
        events = seen + player.events(last_event_id=seen[-1].id, until=completed(turn_id))
        assert finish(player, turn_id)["status"] == "completed"
        mine = [e for e in events if e.data.get("turn_id") == turn_id]
        restarted = [e for e in mine if e.event == "turn.restarted"]
        assert restarted and restarted[-1].data["reason"] == "redelivered"
        assert [e.event for e in mine].count("turn.completed") == 1
        assert story_after_last_restart(events, turn_id) == mine[-1].data["result"]["narrative"]
        assert history_ids(player)[-1] == turn_id and player.state()["version"] == 3
    finally:
        player.close()


@pytest.mark.parametrize("policy", ["offline", "fail"])
def test_failure_policy_when_the_llm_is_down(
    llm_server: FakeLLM,
    worker_factory: WorkerFactory,
    gateway_factory: GatewayFactory,
    policy: str,
) -> None:
    worker_factory(llm_env(llm_server, "down", LLM_FALLBACK=policy, LLM_RETRIES="1"))
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        turn = finish(player, turn_id)
        if policy == "offline":
            assert turn["status"] == "completed"
            assert turn["result"]["narrator"] == "offline_fallback"
            assert "Brannoc" in turn["result"]["narrative"]
            assert player.state()["version"] == 1
        else:
            assert turn["status"] == "failed"
            assert turn["error"]["code"] == "narrator_unavailable"
            assert SECRET not in str(turn)
            assert player.state()["version"] == 0
    finally:
        player.close()


def test_an_agent_shaped_reply_streams_clean_and_is_counted(
    llm_server: FakeLLM,
    worker_factory: WorkerFactory,
    gateway_factory: GatewayFactory,
    tmp_path: Path,
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WORKER_METRICS_PORT": str(port)}
    worker_factory(llm_env(llm_server, "shape-agent+tokens", **metrics))
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        play_to_exploration(player)
        submitted: list[str] = []
        events = player.events(  # followed live: a finished turn's deltas are compacted away
            until=lambda evs: bool(submitted) and completed(submitted[0])(evs),
            on_open=lambda: submitted.append(player.submit({"choice_index": 1}).json()["turn_id"]),
        )
        turn_id = submitted[0]
        mine = [e for e in events if e.data.get("turn_id") == turn_id]
        assert any(e.event == "narration.delta" for e in mine)
        shown = story_after_last_restart(events, turn_id)
        result = mine[-1].data["result"]
        assert shown == result["narrative"]
        assert result["lines"][0] == {"speaker": "narrator", "text": NARRATIVE}
        for event in mine:
            if event.event == "narration.delta":
                assert "Thought" not in event.data["text"] and "Final" not in event.data["text"]
        assert all(c.startswith("Carefully: ") for c in player.state()["state"]["current_choices"])

        def repairs() -> float | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            labels = {"kind": "agent_scaffolding"}
            counted = sample_total(text, "pocket_portals_llm_reply_repairs_total", labels)
            return counted or None

        # The two turns before were told in the same shape.
        assert wait_until(repairs, timeout=30, what="the repair counted") == 3
    finally:
        player.close()


def test_claude_streams_through_a_real_worker(
    llm_server: FakeLLM, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    env = llm_env(llm_server, "tokens")
    env.pop("LLM_API_KEY")
    env.update(
        LLM_MODEL="anthropic/tokens",
        LLM_BASE_URL=f"http://127.0.0.1:{llm_server.port}",
        LLM_PROTOCOL="anthropic",  # a proxy of the Messages API
        ANTHROPIC_API_KEY="sk-ant-integration",
    )
    worker = worker_factory(env)
    gateway = gateway_factory()
    player = Player(gateway.url, seed=4)
    try:
        submitted: list[str] = []
        events = player.events(
            until=lambda evs: bool(submitted) and completed(submitted[0])(evs),
            on_open=lambda: submitted.append(player.submit({"choice_index": 1}).json()["turn_id"]),
        )
        result = events[-1].data["result"]
        assert story_after_last_restart(events, submitted[0]) == result["narrative"]
        assert result["narrator"] == "llm" and result["usage"]["model"] == "anthropic/tokens"
        assert any(e.event == "narration.delta" for e in events)
        assert llm_server.requests[-1]["protocol"] == "anthropic"
        assert "sk-ant-integration" not in worker.log()
    finally:
        player.close()
