"""`GameSessionFlow`: one turn of the game as a CrewAI Flow over `GameState`.

    begin (routes) ─┬─ resolve_character ───┐
                    ├─ resolve_quest_choice ┤
                    ├─ resolve_exploration ─┤
                    ├─ resolve_combat ──────┼─▶ narrate
                    ├─ resolve_dialogue ────┤
                    ├─ resolve_epilogue ────┤
                    └─ resolve_redirect ────┘  (a typed action the moderation step flagged)

The state comes from the session backend through `SessionFlowPersistence`; the flow never
writes it back. `run_turn_step` returns the state after the turn for the worker to commit.
Importing this module imports CrewAI: keep it out of the gateway.

A step runs on an event loop of its own thread, one flow at a time, so nothing else ever
waits on that loop. CrewAI's hand-offs to other threads (a sync method, the persistence
hook after each method, the event-bus flush) are pure cost there: the methods are async,
and what is still handed to a thread runs in place, on the step's own loop (`_StepLoop`).
Together with the trace collector taken off the bus (`crewai_env`), a flow step costs about
a third of the CPU it did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal, TypeVar, TypeVarTuple, Unpack

from shared.game.crewai_env import (
    configure_crewai,
    detach_idle_trace_collection,
    keep_method_signatures,
    quiet_crewai_console,
    skip_environment_event,
)
from shared.settings import get_settings

configure_crewai(
    get_settings().crewai_storage_dir,
    traced=bool(get_settings().otel_exporter_otlp_endpoint),
)

from crewai.events.event_bus import crewai_event_bus  # noqa: E402
from crewai.flow.flow import Flow, listen, or_, router, start  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from shared.errors import AdventureCompleted  # noqa: E402
from shared.game.dice import Dice  # noqa: E402
from shared.game.moderation import Moderator, RuleModerator, Verdict  # noqa: E402
from shared.game.narrator import Narration, Narrator, OfflineNarrator  # noqa: E402
from shared.game.persistence import SessionFlowPersistence, StateLoader  # noqa: E402
from shared.game.rules import (  # noqa: E402
    RESOLVERS,
    Resolution,
    Route,
    begin_turn,
    conclude_turn,
    route_for,
)
from shared.game.rules.quests import quest_choices  # noqa: E402
from shared.game.rules.safety import REDIRECTED, redirect  # noqa: E402
from shared.models import GameState, HistoryEntry, TokenUsage, TurnRecord  # noqa: E402
from shared.tracing import span  # noqa: E402

quiet_crewai_console()
detach_idle_trace_collection()

__all__ = ["GameSessionFlow", "StepResult", "run_turn_step"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class StepResult:
    """The state after the turn (still at the version it was loaded with) and its story."""

    state: GameState
    narrative: str
    outcome: str
    narrator: str = "offline"
    usage: TokenUsage | None = None
    repairs: tuple[str, ...] = ()
    moderation: Verdict | None = None  # None: a chosen option, not checked
    lines: tuple[tuple[str, str], ...] = ()


class GameSessionFlow(Flow[GameState]):
    # Auto-created memory would build an embedding store per flow: not wanted for a game step.
    _skip_auto_memory: bool = True
    _turn: TurnRecord | None = PrivateAttr(default=None)
    _narrator: Narrator = PrivateAttr(default_factory=OfflineNarrator)
    _history_limit: int = PrivateAttr(default=20)
    _dice: Dice | None = PrivateAttr(default=None)
    _resolution: Resolution | None = PrivateAttr(default=None)
    _narration: Narration | None = PrivateAttr(default=None)
    _moderator: Moderator = PrivateAttr(default_factory=RuleModerator)
    _verdict: Verdict | None = PrivateAttr(default=None)

    def _log_flow_event(
        self, message: str, color: str = "yellow", level: Literal["info", "warning"] = "info"
    ) -> None:
        # CrewAI renders these with rich even on a quiet console (a third of a millisecond a
        # turn) and logs "Loading flow state…" at INFO on every turn; the worker logs turns.
        _log.log(logging.WARNING if level == "warning" else logging.DEBUG, "%s", message)

    def prepare(
        self,
        turn: TurnRecord,
        narrator: Narrator,
        history_limit: int,
        moderator: Moderator | None = None,
    ) -> None:
        self._turn = turn
        self._narrator = narrator
        self._history_limit = history_limit
        self._moderator = moderator or RuleModerator()

    @property
    def turn(self) -> TurnRecord:
        if self._turn is None:
            raise RuntimeError("GameSessionFlow.prepare() was not called")
        return self._turn

    def _replace_state(self, state: GameState) -> None:
        # The rules return new states; the flow holds whichever is current.
        self._state = state

    def _copy_and_serialize_state(self) -> GameState:  # type: ignore[override]
        # CrewAI deep-copies and JSON-dumps the state into its flow events, for listeners that
        # may hold on to it. The state is never changed in place (see _replace_state): the
        # model itself is as safe to hand out, and costs nothing.
        state: GameState = self.state
        return state

    @router()
    @start()
    def begin(self) -> str:
        with span("flow.begin"):
            # Starts the turn and routes it in one step: each flow method costs CrewAI's engine
            # more than the rules do. Not async: stacked on Python 3.11, CrewAI's wrappers lose
            # the coroutine mark (inspect.markcoroutinefunction is 3.12+) and would call it as a
            # sync method that returns a coroutine; as a sync method it is run in place by the
            # loop's inline executor all the same.
            if self.state.adventure_completed:
                raise AdventureCompleted(self.state.session_id)
            self._dice = Dice.for_turn(self.state.seed, self.state.version)
            if self.turn.choice_index is None:  # typed by the player: checked before the rules
                self._verdict = self._moderator.check(self.turn.action)
                if self._verdict.flagged:
                    return REDIRECTED
            self._replace_state(begin_turn(self.state))
            return route_for(self.state).value

    def _resolve(self, route: Route) -> str:
        with span(f"flow.resolve {route.value}"):
            assert self._dice is not None
            self._resolution = RESOLVERS[route](self.state, self.turn.action, self._dice)
            return self._resolution.outcome.kind

    @listen(Route.CREATE_CHARACTER.value)
    async def resolve_character(self) -> str:
        return self._resolve(Route.CREATE_CHARACTER)

    @listen(Route.CHOOSE_QUEST.value)
    async def resolve_quest_choice(self) -> str:
        return self._resolve(Route.CHOOSE_QUEST)

    @listen(Route.EXPLORE.value)
    async def resolve_exploration(self) -> str:
        return self._resolve(Route.EXPLORE)

    @listen(Route.FIGHT.value)
    async def resolve_combat(self) -> str:
        return self._resolve(Route.FIGHT)

    @listen(Route.CONVERSE.value)
    async def resolve_dialogue(self) -> str:
        return self._resolve(Route.CONVERSE)

    @listen(Route.EPILOGUE.value)
    async def resolve_epilogue(self) -> str:
        return self._resolve(Route.EPILOGUE)

    @listen(REDIRECTED)
    async def resolve_redirect(self) -> str:
        # The rules apply nothing: no clock tick, no dice, no moment.
        self._resolution = redirect(self.state)
        return REDIRECTED

    @listen(
        or_(
            resolve_redirect,
            resolve_character,
            resolve_quest_choice,
            resolve_exploration,
            resolve_combat,
            resolve_dialogue,
            resolve_epilogue,
        )
    )
    async def narrate(self) -> str:
        with span("flow.narrate"):
            assert self._resolution is not None and self._dice is not None
            resolution = conclude_turn(self._resolution, self._dice)
            state = resolution.state
            # What a flagged action said goes no further: not to the narrator, not to an LLM.
            action = "" if resolution.outcome.kind == REDIRECTED else self.turn.action
            narration = self._narrator.narrate(state, action, resolution.outcome, self._dice)
            # A flagged action is kept out of the history too (it is shown back to the player
            # and may be shared); the turn record keeps what was sent.
            entry = HistoryEntry(
                turn_id=self.turn.turn_id,
                action=action if action else "(withheld)",
                narrative=narration.narrative,
            )
            history = [*state.conversation_history, entry][-self._history_limit :]
            update: dict[str, object] = {"conversation_history": history, "choice_actions": []}
            if narration.quests is not None:
                # The quest designer's board, in place of the quests the rules drew.
                update["quest_options"] = list(narration.quests)
                update["current_choices"] = quest_choices(list(narration.quests))
            if narration.choices is not None:
                # Shown in the narrator's words; applied in the rules' own.
                update["choice_actions"] = state.current_choices
                update["current_choices"] = narration.choices
            if narration.jester_spoke:
                update["jester_last_turn"] = state.adventure_turn
            self._replace_state(state.model_copy(update=update))
            self._resolution = resolution
            self._narration = narration
            return narration.narrative


keep_method_signatures(GameSessionFlow)


class _StepLoop(asyncio.SelectorEventLoop):
    """A step's own event loop: what CrewAI hands to a thread (`asyncio.to_thread`: a sync
    flow method, the persistence hook after each method, the event-bus flush; about a dozen
    per step) runs at once, in place, and its future is already done when it is returned.

    A thread would only make this thread wait for it, having nothing else to run meanwhile
    (one flow at a time). An executor that runs the call in place still answered through a
    thread-safe future: a wake-up of the loop (a byte through its self-pipe, written and read
    back) and a turn of the loop for each hand-off. A done future is awaited without one."""

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[T] = self.create_future()
        try:
            future.set_result(func(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class _ThreadLoop:
    """An event loop for flow steps, one per thread, kept while the thread lives (worker
    threads are pooled) and closed when the thread's locals go with it."""

    def __init__(self) -> None:
        self.loop = _StepLoop()  # may fail (no descriptors left): then there is none

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.close()


_loops = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    holder: _ThreadLoop | None = getattr(_loops, "holder", None)
    if holder is None:
        holder = _loops.holder = _ThreadLoop()
    return holder.loop


def run_turn_step(
    session_id: str,
    turn: TurnRecord,
    *,
    load_state: StateLoader,
    narrator: Narrator,
    history_limit: int = 20,
    moderator: Moderator | None = None,
) -> StepResult:
    """Run one turn's flow. Blocking: call it from a worker thread, never an event loop."""
    flow = GameSessionFlow(
        initial_state=GameState(session_id=session_id),
        persistence=SessionFlowPersistence(load_state),
        suppress_flow_events=True,
    )
    flow.prepare(turn, narrator, history_limit, moderator)
    # What Flow.kickoff does, on this thread's own loop: kickoff builds a new event loop (and
    # a new thread pool for the steps it hands to threads) on every call and tears them down.
    skip_environment_event()
    outermost = crewai_event_bus._enter_runtime_scope()
    try:
        kickoff = flow.kickoff_async(inputs={"id": session_id})
        narrative = _thread_loop().run_until_complete(kickoff)
    finally:
        crewai_event_bus._exit_runtime_scope(outermost)
    outcome = flow._resolution.outcome.kind if flow._resolution else "unknown"
    narration = flow._narration
    return StepResult(
        state=flow.state,
        narrative=str(narrative),
        outcome=outcome,
        narrator=narration.source if narration else "offline",
        usage=narration.usage if narration else None,
        repairs=narration.repairs if narration else (),
        moderation=flow._verdict,
        lines=narration.lines if narration else (),
    )
