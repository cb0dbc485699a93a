"""`GameSessionFlow` through CrewAI's real Flow engine, and its persistence."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from typing import Any

import pytest
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.env_events import DefaultEnvEvent
from crewai.utilities.constants import CODING_AGENT_ENV_MARKERS
from crewai.utilities.env import get_env_context

from shared.errors import AdventureCompleted, SessionNotFound
from shared.game.flow import GameSessionFlow, run_turn_step
from shared.game.narrator import OfflineNarrator
from shared.game.persistence import SessionFlowPersistence
from shared.game.rules import choices_for
from shared.models import GamePhase, GameState, TurnRecord


def make_state(seed: int = 4) -> GameState:
    state = GameState(session_id="f" * 24, seed=seed)
    return state.model_copy(update={"current_choices": choices_for(state)})


def turn(action: str, n: int = 0) -> TurnRecord:
    return TurnRecord(
        turn_id=f"{n:016d}", session_id="f" * 24, action=action, accepted_at=time.time()
    )


def test_flow_step_loads_through_persistence_and_applies_a_turn() -> None:
    store = {"f" * 24: make_state()}
    loads: list[str] = []

    def load(session_id: str) -> GameState | None:
        loads.append(session_id)
        return store.get(session_id)

    step = run_turn_step(
        "f" * 24, turn("Play Pip, a halfling rogue"), load_state=load, narrator=OfflineNarrator()
    )
    assert loads == ["f" * 24]
    assert step.outcome == "character_created"
    assert step.state.version == 0  # the commit, not the flow, moves the version
    assert step.state.phase is GamePhase.QUEST_SELECTION
    assert step.state.conversation_history[-1].narrative == step.narrative
    assert "Pip" in step.narrative
    assert store["f" * 24] == make_state()  # the flow wrote nothing back


def test_flow_routes_each_phase_to_its_step() -> None:
    flow = GameSessionFlow(initial_state=make_state())
    assert {"begin", "narrate", "resolve_combat"} <= set(flow._methods)


def test_missing_session_is_refused_not_played_blank() -> None:
    with pytest.raises(SessionNotFound):
        run_turn_step("f" * 24, turn("x"), load_state=lambda _: None, narrator=OfflineNarrator())


def test_finished_adventure_takes_no_turn() -> None:
    done = make_state().model_copy(update={"adventure_completed": True})
    with pytest.raises(AdventureCompleted):
        run_turn_step("f" * 24, turn("x"), load_state=lambda _: done, narrator=OfflineNarrator())


def test_history_is_capped_keeping_the_newest() -> None:
    state = make_state()
    for n in range(6):
        step = run_turn_step(
            "f" * 24,
            turn("Look around", n),
            load_state=lambda _, current=state: current,  # type: ignore[misc]
            narrator=OfflineNarrator(),
            history_limit=3,
        )
        state = step.state.model_copy(update={"version": state.version + 1})
    assert [h.turn_id for h in state.conversation_history] == [f"{n:016d}" for n in (3, 4, 5)]


def test_persistence_save_only_stages() -> None:
    saved = make_state()
    persistence = SessionFlowPersistence(lambda _: saved)
    persistence.save_state("f" * 24, "begin", saved.model_copy(update={"location": "x"}))
    assert persistence.staged("f" * 24)["location"] == "x"  # type: ignore[index]
    assert persistence.load_state("f" * 24)["location"] == saved.location  # type: ignore[index]


def test_a_step_runs_entirely_on_the_calling_thread() -> None:
    # The step's loop is its thread's alone: CrewAI's hand-offs to other threads (sync
    # methods, the persistence hook, the bus flush) would only make it wait.
    seen: list[int] = []

    class RecordingNarrator(OfflineNarrator):
        def narrate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return super().narrate(*args, **kwargs)

    def load(_: str) -> GameState:
        seen.append(threading.get_ident())
        return make_state()

    run_turn_step(
        "f" * 24, turn("Play Pip, a halfling rogue"), load_state=load, narrator=RecordingNarrator()
    )
    assert seen and set(seen) == {threading.get_ident()}


def test_what_a_step_hands_to_a_thread_is_done_in_place_at_once() -> None:
    """On a step's loop a hand-off to a thread (asyncio.to_thread, as CrewAI makes a dozen
    per step) runs on the step's own thread and returns a future already done: no wake-up
    of the loop through its self-pipe, no turn of the loop for it."""
    from shared.game.flow import _thread_loop

    seen: list[object] = []

    def boom() -> None:
        raise ValueError("boom")

    async def step() -> None:
        loop = asyncio.get_running_loop()
        handed = loop.run_in_executor(None, threading.get_ident)
        seen.append(handed.done())
        seen.append(await handed)
        seen.append(await asyncio.to_thread(threading.get_ident))
        with pytest.raises(ValueError, match="boom"):
            await asyncio.to_thread(boom)

    _thread_loop().run_until_complete(step())
    assert seen == [True, threading.get_ident(), threading.get_ident()]


def test_flow_methods_are_coroutines() -> None:
    # A sync method is handed to a thread by CrewAI on every call (run in place by the step's
    # loop; begin, a start and a router at once, has to be one: see its comment).
    flow = GameSessionFlow(initial_state=make_state())
    sync = {name for name, m in flow._methods.items() if not asyncio.iscoroutinefunction(m)}
    assert sync == {"begin"}


def test_each_flow_method_keeps_the_signature_crewai_asks_for() -> None:
    """CrewAI binds each flow method anew for every flow and asks `inspect.signature` of the
    function it wraps: each carries its own, the one inspect would compute."""
    from crewai.flow.flow_wrappers import FlowMethod

    functions = []
    for member in vars(GameSessionFlow).values():
        while isinstance(member, FlowMethod):
            member = member._meth
        if inspect.isfunction(member) and "__signature__" in vars(member):
            functions.append(member)
    assert {f.__name__ for f in functions} >= {"begin", "resolve_combat", "narrate"}
    assert len(functions) == len(GameSessionFlow.flow_definition().methods)
    for function in functions:
        kept = vars(function)["__signature__"]
        del function.__signature__
        try:
            assert inspect.signature(function) == kept
        finally:
            function.__signature__ = kept  # type: ignore[attr-defined]
    begin = next(f for f in functions if f.__name__ == "begin")
    flow = GameSessionFlow(initial_state=make_state())
    assert flow._methods["begin"].__signature__ == inspect.signature(begin)


def test_idle_trace_collection_is_off_the_event_bus() -> None:
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.flow_events import FlowFinishedEvent, FlowStartedEvent

    from shared.game.crewai_env import detach_idle_trace_collection

    assert detach_idle_trace_collection()  # CREWAI_TRACING_ENABLED=false, as the service runs
    for event_type in (FlowStartedEvent, FlowFinishedEvent):
        handlers = crewai_event_bus._sync_handlers.get(event_type, frozenset())
        assert not [h for h in handlers if "tracing" in getattr(h, "__module__", "")]


def test_a_step_announces_no_environment_to_the_event_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker runs each step in a fresh copy of its task's context, where CrewAI would emit
    a DefaultEnvEvent at every kickoff; the step marks it emitted (crewai_env)."""
    # Run under a coding assistant, CrewAI would announce that one instead of the default.
    for _agent, names in CODING_AGENT_ENV_MARKERS:
        for name in names:
            monkeypatch.delenv(name, raising=False)
    seen: list[Any] = []
    with crewai_event_bus.scoped_handlers():

        @crewai_event_bus.on(DefaultEnvEvent)
        def note(_source: Any, event: DefaultEnvEvent) -> None:
            seen.append(event)

        # The control: CrewAI's own call, in a fresh context, emits one. (Fresh: empty, as
        # the steps this test process ran directly marked its own context.)
        contextvars.Context().run(get_env_context)
        assert crewai_event_bus.flush(timeout=30)
        assert len(seen) == 1
        step = contextvars.Context().run(
            run_turn_step,
            "f" * 24,
            turn("Play Pip, a halfling rogue"),
            load_state=lambda _: make_state(),
            narrator=OfflineNarrator(),
        )
        assert crewai_event_bus.flush(timeout=30)
    assert step.outcome == "character_created"
    assert len(seen) == 1
