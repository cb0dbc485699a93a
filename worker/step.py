"""The step an attempt of a turn runs: by default the CrewAI flow with the configured narrator.

The pipeline runs it in a thread of its step pool (it blocks on the narrator), with a state
loader and a narration stream that reach back to the pipeline's loop. Tests pass steps of
their own (a `StepRunner`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.game.narrator import NarrationStream
from shared.models import TurnRecord
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.game.flow import StepResult
    from shared.game.persistence import StateLoader

__all__ = ["StepRunner", "run_flow_step"]

StepRunner = Callable[[str, TurnRecord, "StateLoader", Settings, NarrationStream], "StepResult"]


def run_flow_step(
    session_id: str,
    turn: TurnRecord,
    load_state: StateLoader,
    settings: Settings,
    stream: NarrationStream,
) -> StepResult:
    """The default step: the CrewAI flow with the configured narrator (imported on first
    use: it loads CrewAI)."""
    from shared.game.flow import run_turn_step
    from shared.game.moderation import moderator_for
    from shared.game.narrator import Narrator, OfflineNarrator

    offline = OfflineNarrator(
        delay=settings.narrator_delay,
        fail_on=settings.narrator_fail_on,
        jester_cooldown=settings.jester_cooldown,
    )
    narrator: Narrator = offline
    if settings.narrator == "llm":
        from shared.game.llm.client import ChatClient, provider_gate
        from shared.game.llm.narrator import LLMNarrator

        client = ChatClient(settings, gate=provider_gate(settings))
        narrator = LLMNarrator(client, settings, stream, fallback=offline)
    return run_turn_step(
        session_id,
        turn,
        load_state=load_state,
        narrator=narrator,
        history_limit=settings.history_limit,
        moderator=moderator_for(settings),
    )
