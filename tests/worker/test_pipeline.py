"""The turn pipeline on a real backend (memory and Redis), with the real flow step."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from shared import tracing
from shared.backends import InMemoryBackend, RedisBackend, SessionBackend
from shared.backends.base import Committed
from shared.backends.codec import CLIENT_OPTIONS
from shared.errors import BackendUnavailable
from shared.game.persistence import StateLoader
from shared.models import GameState, TurnRecord, TurnResult, TurnStatus
from shared.settings import Settings
from tests.shared.backends.conftest import new_state, new_turn
from worker.pipeline import DrainOutcome, TurnPipeline
from worker.step import run_flow_step


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SessionBackend]:
    if request.param == "memory":
        yield InMemoryBackend()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"), **CLIENT_OPTIONS)
    redis_backend = RedisBackend(client, session_ttl=600)
    yield redis_backend
    await redis_backend.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        session_backend="redis",
        crewai_storage_dir=tmp_path,  # type: ignore[arg-type]
        lease_ttl=5,
        _env_file=None,
    )  # type: ignore[call-arg]


async def queue(backend: SessionBackend, state: GameState, *actions: str) -> list[TurnRecord]:
    turns = [new_turn(state.session_id, a) for a in actions]
    for turn in turns:
        await backend.accept_turn(turn, max_pending=50, idempotency=None)
    return turns


async def test_turns_apply_once_each_in_acceptance_order(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    turns = await queue(backend, state, "Play Pip, a halfling rogue", "hmm", "Look around")
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 3
    assert [h.turn_id for h in stored.conversation_history] == [t.turn_id for t in turns]
    for number, turn in enumerate(turns, start=1):
        record = await backend.get_turn(state.session_id, turn.turn_id)
        assert record is not None and record.status is TurnStatus.COMPLETED
        assert record.result is not None and record.result.state_version == number
    names = [e.event for e in await backend.read_events(state.session_id, "0")]
    assert names.count("turn.completed") == 3


async def test_a_failing_step_fails_its_turn_and_not_the_next(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    bad, good = await queue(backend, state, "explode", "Play Pip, a halfling rogue")

    attempts: list[int] = []

    def flaky(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> object:
        if turn.action == "explode":
            attempts.append(turn.attempts)
            raise RuntimeError("narrator fell over")
        return run_flow_step(sid, turn, load, s, out)

    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop(), step_runner=flaky)  # type: ignore[arg-type]
    await pipeline.drain(state.session_id)
    assert attempts == [1, 2, 3]  # bounded retries, then the turn fails
    failed = await backend.get_turn(state.session_id, bad.turn_id)
    assert failed is not None and failed.status is TurnStatus.FAILED
    assert failed.error is not None and "try another action" in failed.error.message
    assert "narrator fell over" not in failed.error.message
    done = await backend.get_turn(state.session_id, good.turn_id)
    assert done is not None and done.status is TurnStatus.COMPLETED
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 1


async def test_busy_lease_asks_for_a_retry_only_when_turns_wait(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    assert await backend.acquire_lease(state.session_id, "someone-else", 30)
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    await queue(backend, state, "Look around")
    assert await pipeline.drain(state.session_id) is DrainOutcome.LEASE_BUSY
    await backend.release_lease(state.session_id, "someone-else")
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    assert await backend.pending_count(state.session_id) == 0


async def test_a_stale_writer_loses_and_the_turn_applies_once(
    backend: SessionBackend, settings: Settings
) -> None:
    """While our step runs, another worker (its lease expired on us) commits the same turn.
    Our commit must be rejected, and we must move on to the next turn."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    first, second = await queue(backend, state, "Play Pip, a halfling rogue", "Look around")
    loop = asyncio.get_running_loop()
    raced = False

    def racing(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> object:
        nonlocal raced
        step = run_flow_step(sid, turn, load, s, out)
        if not raced:
            raced = True
            rival = step.state.model_copy(update={"location": "the rival's version"})
            done = turn.model_copy(
                update={
                    "status": TurnStatus.COMPLETED,
                    "result": TurnResult(
                        narrative="rival", choices=rival.current_choices, state_version=1
                    ),
                }
            )
            asyncio.run_coroutine_threadsafe(backend.commit_turn(rival, done), loop).result(10)
        return step

    pipeline = TurnPipeline(backend, settings, loop=loop, step_runner=racing)  # type: ignore[arg-type]
    await pipeline.drain(state.session_id)
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 2
    assert [h.turn_id for h in stored.conversation_history] == [first.turn_id, second.turn_id]
    record = await backend.get_turn(state.session_id, first.turn_id)
    assert record is not None and record.result is not None
    assert record.result.narrative == "rival"


async def test_a_turn_whose_workers_keep_dying_is_abandoned(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    (turn,) = await queue(backend, state, "Look around")
    for _ in range(3):  # three starts, each "crashed" before committing
        assert await backend.start_turn(state.session_id, turn.turn_id, time.time())
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    await pipeline.drain(state.session_id)
    record = await backend.get_turn(state.session_id, turn.turn_id)
    assert record is not None and record.status is TurnStatus.FAILED
    assert record.error is not None and record.error.code == "turn_abandoned"


async def test_a_drain_hands_off_after_its_time_budget(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    await queue(backend, state, "Play Pip, a halfling rogue", "Look around", "Look around")
    budget = settings.model_copy(update={"drain_time_budget": 0.001})
    pipeline = TurnPipeline(backend, budget, loop=asyncio.get_running_loop())
    assert await pipeline.drain(state.session_id) is DrainOutcome.HANDOFF
    stored = await backend.get(state.session_id)
    assert stored is not None and 1 <= stored.version < 3
    while await pipeline.drain(state.session_id) is DrainOutcome.HANDOFF:
        pass
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 3


@pytest.fixture
def turn_spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The service's spans go to a provider of the test's own, kept in memory (the process's
    global provider is left alone: it can be set once only)."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # CrewAI's switch, if the game loaded
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_TRACER", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def attempts_of(exporter: InMemorySpanExporter, turn: TurnRecord) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.name == "turn"
        and span.attributes
        and span.attributes.get("pocket_portals.turn_id") == turn.turn_id
    ]


async def test_an_attempt_that_fails_ends_its_span_in_error(
    backend: SessionBackend, settings: Settings, turn_spans: InMemorySpanExporter
) -> None:
    """Each failed attempt's span says so (with the error's type, not its message), caught
    and handled as the error is; the next turn's span does not."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    bad, good = await queue(backend, state, "explode", "Play Pip, a halfling rogue")

    def flaky(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> object:
        if turn.action == "explode":
            raise RuntimeError("the player's secret words")
        return run_flow_step(sid, turn, load, s, out)

    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop(), step_runner=flaky)  # type: ignore[arg-type]
    await pipeline.drain(state.session_id)
    failed = attempts_of(turn_spans, bad)
    assert len(failed) == settings.turn_max_attempts
    assert all(span.status.status_code is StatusCode.ERROR for span in failed)
    assert {span.status.description for span in failed} == {"RuntimeError"}
    [done] = attempts_of(turn_spans, good)
    assert done.status.status_code is StatusCode.UNSET


async def test_a_turn_is_drawn_starting_in_its_own_trace_only_when_its_task_is_elsewhere(
    backend: SessionBackend, settings: Settings, turn_spans: InMemorySpanExporter
) -> None:
    """A task drains its own request's turn and then another request's: the store's spans
    for the start are in the task's trace, so only the other turn draws `turn.start`."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    tracer = tracing._TRACER
    with tracer.start_as_current_span("POST first") as first_request:
        first = new_turn(state.session_id, "Play Pip, a halfling rogue")
        first = first.model_copy(update={"traceparent": tracing.current_traceparent()})
    with tracer.start_as_current_span("POST second"):
        second = new_turn(state.session_id, "Look around")
        second = second.model_copy(update={"traceparent": tracing.current_traceparent()})
    for turn in (first, second):
        await backend.accept_turn(turn, max_pending=50, idempotency=None)
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    # The task published by the first request runs in its trace.
    with tracer.start_as_current_span("run", context=trace.set_span_in_context(first_request)):
        assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    spans = turn_spans.get_finished_spans()
    [first_attempt] = attempts_of(turn_spans, first)
    [second_attempt] = attempts_of(turn_spans, second)
    started = [span for span in spans if span.name == "turn.start"]
    assert [span.parent.span_id for span in started if span.parent] == [
        second_attempt.context.span_id
    ]
    assert first_attempt.context.trace_id == first_request.get_span_context().trace_id
    assert second_attempt.context.trace_id != first_attempt.context.trace_id


async def test_a_turn_queued_behind_the_epilogue_fails_as_adventure_completed(
    backend: SessionBackend, settings: Settings, turn_spans: InMemorySpanExporter
) -> None:
    # The gateway accepted both while the story was still open; the first one ended it.
    ended = new_state().model_copy(update={"adventure_completed": True, "current_choices": []})
    await backend.create(ended, owner_hash="o")
    (late,) = await queue(backend, ended, "One more look around")
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    assert await pipeline.drain(ended.session_id) is DrainOutcome.DRAINED
    failed = await backend.get_turn(ended.session_id, late.turn_id)
    assert failed is not None and failed.status is TurnStatus.FAILED
    assert failed.error is not None and failed.error.code == "adventure_completed"
    stored = await backend.get(ended.session_id)
    assert stored is not None and stored.version == 0  # the ended story is left as it was
    [attempt] = attempts_of(turn_spans, late)
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.status.description == "AdventureCompleted (adventure_completed)"


async def test_narration_pieces_that_come_close_together_are_published_together(
    backend: SessionBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    (turn,) = await queue(backend, state, "Play Pip, a halfling rogue")
    pieces = [f"word{n} " for n in range(50)]

    def chatty(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> object:
        for piece in pieces:  # far faster than NARRATION_DELTA_INTERVAL
            out.delta(piece)
        return run_flow_step(sid, turn, load, s, out)

    # A finished turn's stream keeps only its last event: record them as they are written.
    written: list[tuple[str, dict[str, Any]]] = []
    append_event = backend.append_event

    async def recording(session_id: str, event: str, data: dict[str, Any], **kw: Any) -> str:
        written.append((event, data))
        return await append_event(session_id, event, data, **kw)

    commit_turn = backend.commit_turn

    async def committing(state: GameState, record: TurnRecord, **kw: Any) -> Committed:
        written.append(("commit", {}))
        return await commit_turn(state, record, **kw)

    monkeypatch.setattr(backend, "append_event", recording)
    monkeypatch.setattr(backend, "commit_turn", committing)
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop(), step_runner=chatty)  # type: ignore[arg-type]
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    names = [event for event, _ in written]
    deltas = [data["text"] for event, data in written if event == "narration.delta"]
    # The first piece at once, the rest together: every word, in order, before the end.
    assert 2 <= len(deltas) < 10
    assert "".join(deltas) == "".join(pieces)
    assert names.index("commit") > max(
        i for i, name in enumerate(names) if name == "narration.delta"
    )
    done = await backend.get_turn(state.session_id, turn.turn_id)
    assert done is not None and done.status is TurnStatus.COMPLETED


async def test_a_superseded_attempt_neither_narrates_nor_commits(
    backend: SessionBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mid-step, another attempt of the turn starts (our lease was lost to a worker that took
    over). From then on none of our words reach the stream and our commit is refused; the
    turn applies once."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    (turn,) = await queue(backend, state, "Play Pip, a halfling rogue")
    loop = asyncio.get_running_loop()
    calls: list[int] = []

    def overtaken(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> Any:
        calls.append(turn.attempts)
        step = run_flow_step(sid, turn, load, s, out)
        if len(calls) == 1:
            out.delta("before the takeover ")
            rival = backend.start_turn(sid, turn.turn_id, time.time(), runner="rival")
            assert asyncio.run_coroutine_threadsafe(rival, loop).result(10) is not None
            out.delta("after the takeover")
        return step

    written: list[str] = []
    append_event = backend.append_event

    async def recording(session_id: str, event: str, data: dict[str, Any], **kw: Any) -> str:
        event_id = await append_event(session_id, event, data, **kw)
        written.append(str(data.get("text", event)))
        return event_id

    monkeypatch.setattr(backend, "append_event", recording)
    every_piece = settings.model_copy(update={"narration_delta_interval": 0})  # none held back
    pipeline = TurnPipeline(backend, every_piece, loop=loop, step_runner=overtaken)  # type: ignore[arg-type]
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    assert "before the takeover " in written and "after the takeover" not in written
    # Our lease was never really taken here, so we ran the turn again, as its third attempt.
    assert calls == [1, 3] and "turn.restarted" in written
    stored = await backend.get(state.session_id)
    assert stored is not None and stored.version == 1
    done = await backend.get_turn(state.session_id, turn.turn_id)
    assert done is not None and done.status is TurnStatus.COMPLETED


async def test_a_result_that_cannot_be_stored_fails_its_turn_at_once(
    backend: SessionBackend, settings: Settings
) -> None:
    state = new_state()
    await backend.create(state, owner_hash="o")
    bad, good = await queue(backend, state, "Play Pip, a halfling rogue", "Look around")
    attempts: list[int] = []

    def unstorable(sid: str, turn: TurnRecord, load: StateLoader, s: Settings, out: Any) -> Any:
        step = run_flow_step(sid, turn, load, s, out)
        if turn.turn_id == bad.turn_id:
            attempts.append(turn.attempts)
            # A lone surrogate: no encoding of it exists, so no retry could ever store it.
            return dataclasses.replace(step, narrative=step.narrative + "\ud800")
        return step

    pipeline = TurnPipeline(
        backend,
        settings,
        loop=asyncio.get_running_loop(),
        step_runner=unstorable,  # type: ignore[arg-type]
    )
    assert await pipeline.drain(state.session_id) is DrainOutcome.DRAINED
    assert attempts == [1]
    failed = await backend.get_turn(state.session_id, bad.turn_id)
    assert failed is not None and failed.status is TurnStatus.FAILED
    assert failed.error is not None and failed.error.code == "step_failed"
    done = await backend.get_turn(state.session_id, good.turn_id)
    assert done is not None and done.status is TurnStatus.COMPLETED


async def test_a_lease_a_drain_could_not_release_is_taken_back_by_its_thread(
    backend: SessionBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store went away as a drain ended: its lease stays behind. The next drain of the
    same thread takes it over at once; a drain of another thread waits for it as before."""
    state = new_state()
    await backend.create(state, owner_hash="o")
    await queue(backend, state, "Play Pip, a halfling rogue")
    release_lease = backend.release_lease

    async def unreachable(session_id: str, holder: str) -> int:
        raise BackendUnavailable("session store")

    commit_turn = backend.commit_turn

    async def commit_keeping_the_lease(state: GameState, record: TurnRecord, **kw: Any) -> Any:
        # The drain's last look then finds the inbox empty and must release the lease itself.
        return await commit_turn(state, record, runner=kw.get("runner"))

    monkeypatch.setattr(backend, "release_lease", unreachable)
    monkeypatch.setattr(backend, "commit_turn", commit_keeping_the_lease)
    pipeline = TurnPipeline(backend, settings, loop=asyncio.get_running_loop())
    with pytest.raises(BackendUnavailable):
        await pipeline.drain(state.session_id, owner="node/instance/41/7/")
    monkeypatch.setattr(backend, "release_lease", release_lease)
    await queue(backend, state, "Look around")
    other = await pipeline.drain(state.session_id, owner="node/instance/41/8/")
    assert other is DrainOutcome.LEASE_BUSY
    same = await pipeline.drain(state.session_id, owner="node/instance/41/7/")
    assert same is DrainOutcome.DRAINED
    assert await backend.pending_count(state.session_id) == 0
