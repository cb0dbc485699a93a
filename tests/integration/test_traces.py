"""One trace per turn (OpenTelemetry): a real gateway and a real Celery worker (LLM narrator
on the tests' local server) export to a loopback OTLP/HTTP receiver, and one turn's spans,
from the POST through the queue to the worker's commit, form one trace with the parents
right; nothing the player typed, no token and no prompt is in an attribute."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.otlp import Receiver, Span, otlp_receiver
from tests.support.player import Player
from tests.support.processes import CeleryWorker, Gateway
from tests.support.sse import read_events
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ACTION = "I whisper the secret word xyzzy to the fog"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as started:
        yield started


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm() as server:
        yield server


def by_name(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s.name == name]


def script(spans: list[Span], name: str) -> list[Span]:
    """The store's spans for script `name` (a pipeline's span names its other commands)."""
    return [s for s in spans if s.name.endswith(f"EVALSHA {name}")]


def test_one_turn_is_one_trace_from_the_post_to_the_commit(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    receiver: Receiver,
    llm: FakeLLM,
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # The suite's own process may have loaded CrewAI's switches (which turn the SDK off
        # when tracing is not asked for); these processes ask for it.
        "OTEL_SDK_DISABLED": "false",
        "NARRATOR": "llm",
        "LLM_MODEL": "openai/story",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-trace-secret",
        "LLM_DESIGN_MAX_TOKENS": "0",
    }
    worker = worker_factory(env)
    gateway = gateway_factory(env)
    player = Player(gateway.url)
    try:
        sent = player.submit({"action": ACTION})
        assert sent.status_code == 202, sent.text
        turn_id = sent.json()["turn_id"]
        assert player.turn(turn_id, wait=30)["status"] == "completed"
        # And its end read again on the session's event stream, as the page opens it: the
        # token in the query string (EventSource sets no header).
        read_events(
            f"{gateway.url}/sessions/{player.session_id}/events"
            f"?token={player.token}&last_event_id=0",
            until=lambda events: any(e.event == "turn.completed" for e in events),
        )
        token = player.token
    finally:
        player.close()

    def the_turn() -> list[Span] | None:
        spans = receiver.snapshot()
        commits = [
            s
            for s in by_name(spans, "turn")
            if s.attributes.get("pocket_portals.turn_id") == turn_id
        ]
        posts = [s for s in spans if s.name.startswith("POST /sessions/{session_id}/turns")]
        if not commits or not posts or not script(spans, "COMMIT"):
            return None
        trace = commits[0].trace_id
        mine = [s for s in spans if s.trace_id == trace]
        done = (
            "apply_async/pocket_portals.process_session",
            "run/pocket_portals.process_session",
            "turn.queue_wait",
            "flow.begin",
            "flow.narrate",
            "turn.event narration.delta",
        )
        delivered = {s.attributes.get("delivery") for s in by_name(mine, "turn.delivery")}
        scripts = ("ACCEPT_OWNED", "CLAIM", "COMMIT")
        every = all(by_name(mine, name) for name in done) and all(
            script(mine, name) for name in scripts
        )
        chatted = any(s.name.startswith("chat ") for s in mine)
        return mine if every and chatted and delivered == {"long_poll", "sse"} else None

    try:
        spans = wait_until(the_turn, timeout=60, what="the turn's spans", interval=0.2)
    except TimeoutError:
        got = sorted({(s.service, s.name) for s in receiver.snapshot()})
        raise AssertionError(
            f"the turn's trace is incomplete; spans received: {got}\n{worker.log()[-4000:]}"
        ) from None
    ids = {s.span_id: s for s in spans}

    def parent(span: Span) -> Span:
        return ids[span.parent_id]

    post = next(
        s for s in spans if s.name == "POST /sessions/{session_id}/turns" and not s.parent_id
    )
    assert post.service == "pocket-portals-gateway"
    turn = by_name(spans, "turn")[0]
    assert turn.service == "pocket-portals-worker"
    # The turn's spans hang from the request that accepted it, through the queue.
    assert parent(turn) is post
    assert turn.attributes["pocket_portals.narrator"] == "llm"
    # The admission and the accept in one step: redis-py's span, named after the script.
    accepted = script(spans, "ACCEPT_OWNED")[0]
    assert parent(accepted) is post
    assert accepted.attributes["db.system"] == "redis"
    assert not script(spans, "ADMIT") and not script(spans, "ACCEPT")
    publish = next(s for s in spans if s.name.startswith("apply_async/"))
    assert parent(publish) is post
    run = by_name(spans, "run/pocket_portals.process_session")[0]
    assert parent(run) is publish
    assert run.span_id in turn.links  # the task that ran the turn
    # The lease with the head, its start and the state, in one step: in the task's trace.
    assert parent(script(spans, "CLAIM")[0]) is run
    assert not script(spans, "START")
    for name in ("turn.queue_wait", "flow.begin", "flow.narrate"):
        assert parent(by_name(spans, name)[0]) is turn, name
    # The claim and the start are in this trace already: not drawn again under the turn.
    assert not by_name(spans, "turn.start")
    assert parent(script(spans, "COMMIT")[0]) is turn
    # The turn's admission ticket went back inside the commit: no script of its own.
    assert not script(spans, "RELEASE_ADMISSION")
    wait = by_name(spans, "turn.queue_wait")[0]
    assert wait.start < wait.end <= script(spans, "CLAIM")[0].end
    assert any(s.name.startswith("flow.resolve ") and parent(s) is turn for s in spans)
    # Each LLM call, with the gen_ai conventions, under the flow stage that made it.
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert chats and all(parent(c).name.startswith("flow.") for c in chats)
    for chat in chats:
        assert chat.attributes["gen_ai.request.model"] == "openai/story"
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert any("gen_ai.response.time_to_first_token" in c.attributes for c in chats)
    # Narration as it was published, and the store's commands, in the same trace.
    assert any(s.name == "turn.event narration.delta" and parent(s) is turn for s in spans)
    assert any(s.attributes.get("db.system") == "redis" for s in spans)
    # The answer's delivery to the long poll and on the stream, in the turn's trace, each
    # linked to its own request's span.
    delivered = {s.attributes["delivery"]: s for s in by_name(spans, "turn.delivery")}
    for way, route in (
        ("long_poll", "GET /sessions/{session_id}/turns/{turn_id}"),
        ("sse", "GET /sessions/{session_id}/events"),
    ):
        assert parent(delivered[way]) is post, way
        requests = wait_until(
            lambda route=route: [s for s in receiver.snapshot() if s.name == route] or None,
            timeout=30,
            what=f"the {route} request span",
            interval=0.2,
        )
        assert any(request.span_id in delivered[way].links for request in requests), way
    # Never what the player typed, a token or the key, in any attribute of any span sent:
    # the stream's own request span (its URL held the token) included, as it is in now.
    for sent_span in receiver.snapshot():
        for value in sent_span.attributes.values():
            text = str(value)
            assert "xyzzy" not in text and token not in text and "sk-trace-secret" not in text


def test_a_turn_retried_after_its_worker_was_killed_stays_in_its_trace(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    receiver: Receiver,
) -> None:
    """A pool child SIGKILLed mid-turn: the turn's second attempt, run by another task that
    the pool's parent re-queued, joins the trace of the request that accepted the turn."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SDK_DISABLED": "false",
        "NARRATOR_DELAY": "1",
        "LEASE_TTL": "600",
    }
    worker = worker_factory(env, concurrency=1)
    gateway = gateway_factory(env)
    player = Player(gateway.url)
    try:
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        started = re.compile(rf"turn {re.escape(turn_id)} started in pid (\d+) \(attempt 1\)")
        found = wait_until(lambda: started.search(worker.log()), timeout=60, what="attempt 1")
        os.kill(int(found.group(1)), signal.SIGKILL)
        deadline = time.monotonic() + 90
        while player.turn(turn_id, wait=10)["status"] != "completed":
            assert time.monotonic() < deadline, "the killed turn did not complete"
    finally:
        player.close()

    def second_attempt() -> Span | None:
        return next(
            (
                s
                for s in by_name(receiver.snapshot(), "turn")
                if s.attributes.get("pocket_portals.turn_id") == turn_id
                and s.attributes.get("pocket_portals.attempt") == 2
            ),
            None,
        )

    def second_attempt_and_its_task() -> Span | None:
        retried = second_attempt()
        ran = by_name(receiver.snapshot(), "run/pocket_portals.process_session")
        if retried is None or not any(s.span_id in retried.links for s in ran):
            return None  # the task's span ends after the turn's: maybe in a later batch
        return retried

    retried = wait_until(
        second_attempt_and_its_task, timeout=60, what="the second attempt's span", interval=0.2
    )
    spans = receiver.snapshot()
    post = next(
        s
        for s in spans
        if s.name == "POST /sessions/{session_id}/turns" and s.trace_id == retried.trace_id
    )
    assert retried.parent_id == post.span_id
    # Run by a task of its own (the re-queue), linked; and committed in the same trace.
    runs = [
        s
        for s in by_name(spans, "run/pocket_portals.process_session")
        if s.span_id in retried.links
    ]
    assert runs
    assert any(
        s.parent_id == retried.span_id and s.trace_id == post.trace_id
        for s in script(spans, "COMMIT")
    )


def test_a_turn_the_sweeper_queues_again_stays_in_its_trace(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    receiver: Receiver,
    service_env: dict[str, str],
    redis_url: str,
) -> None:
    """The turn's task lost after the turn was recorded (its queue emptied before any worker
    took it): the sweeper queues the session again, and the turn, run by the sweeper's task,
    joins the trace of the request that accepted it."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SDK_DISABLED": "false",
        "SWEEP_INTERVAL": "0.5",
        "SWEEP_STALE_AFTER": "1",
    }
    gateway = gateway_factory(env)
    player = Player(gateway.url)
    broker = redis.Redis.from_url(redis_url)
    try:
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        # kombu keeps a list per priority, named after the queue.
        queued = [
            key
            for key in broker.keys(service_env["CELERY_QUEUE"] + "*")
            if broker.type(key) == b"list"
        ]
        assert sum(broker.llen(key) for key in queued) == 1  # published before the answer
        broker.delete(*queued)
        worker_factory(env)
        deadline = time.monotonic() + 90
        while player.turn(turn_id, wait=10)["status"] != "completed":
            assert time.monotonic() < deadline, "the swept turn did not complete"
    finally:
        broker.close()
        player.close()

    def the_turn() -> Span | None:
        spans = receiver.snapshot()
        turn = next(
            (
                s
                for s in by_name(spans, "turn")
                if s.attributes.get("pocket_portals.turn_id") == turn_id
            ),
            None,
        )
        if turn is None or not any(s.parent_id == turn.span_id for s in spans):
            return None
        # The task's own span ends after the turn's (it releases the lease, looks at the
        # inbox): it may come in a later batch.
        ran = by_name(spans, "run/pocket_portals.process_session")
        return turn if any(s.span_id in turn.links for s in ran) else None

    turn = wait_until(the_turn, timeout=60, what="the swept turn's span", interval=0.2)
    spans = receiver.snapshot()
    post = next(s for s in spans if s.span_id == turn.parent_id)
    assert post.name == "POST /sessions/{session_id}/turns"
    assert post.service == "pocket-portals-gateway"
    # Run by the sweeper's task, published from the worker's main process (not traced): a
    # trace of its own, linked from the turn, not its parent.
    run = next(
        s for s in by_name(spans, "run/pocket_portals.process_session") if s.span_id in turn.links
    )
    assert run.trace_id != post.trace_id
    assert not run.parent_id
    # So the claim and the start, in the task's trace, are drawn again in the turn's.
    assert {s.name for s in spans if s.parent_id == turn.span_id} >= {
        "turn.queue_wait",
        "turn.start",
        "flow.begin",
        "EVALSHA COMMIT",
    }
