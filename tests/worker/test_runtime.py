"""A worker process's runtime: its own loop, and a drain through it with the default step
(the CrewAI flow), whose thread runs on a loop of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shared.game.narrator import Narration, OfflineNarrator
from shared.settings import Settings
from tests.shared.backends.conftest import new_state, new_turn
from worker.pipeline import DrainOutcome
from worker.runtime import WorkerRuntime


def test_a_drain_runs_each_step_on_its_threads_own_loop_and_close_closes_the_runtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        session_backend="memory",
        celery_task_always_eager=True,
        crewai_storage_dir=tmp_path,  # type: ignore[arg-type]
        worker_step_threads=1,
        _env_file=None,
    )  # type: ignore[call-arg]
    seen: list[asyncio.AbstractEventLoop] = []
    narrate = OfflineNarrator.narrate

    def noting_the_loop(self: OfflineNarrator, *args: Any, **kwargs: Any) -> Narration:
        seen.append(asyncio.get_running_loop())
        return narrate(self, *args, **kwargs)

    monkeypatch.setattr(OfflineNarrator, "narrate", noting_the_loop)
    runtime = WorkerRuntime(settings)  # the default step: the flow, as settings say
    try:
        state = new_state()
        runtime.run(runtime.backend.create(state, owner_hash="o"))
        for action in ("Play Pip, a halfling rogue", "Look around"):
            turn = new_turn(state.session_id, action)
            runtime.run(runtime.backend.accept_turn(turn, max_pending=8, idempotency=None))
        outcome = runtime.run(runtime.pipeline.drain(state.session_id), timeout=120)
        assert outcome is DrainOutcome.DRAINED
        stored = runtime.run(runtime.backend.get(state.session_id))
        assert stored is not None and stored.version == 2
        # Both steps ran in the pool's one thread, on its one loop, not the runtime's.
        assert len(seen) == 2 and seen[0] is seen[1] and seen[0] is not runtime.loop
    finally:
        runtime.close()
    assert runtime.loop.is_closed()
