"""`SessionFlowPersistence`: CrewAI's `FlowPersistence` over the session backend.

`load_state` reads the committed state from the backend, so `Flow.kickoff(inputs={"id": sid})`
loads a session the CrewAI way. `save_state` only stages: a flow saving after a step must
never make a half-applied turn visible. The one visible write is the worker's version-checked
commit of the final state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crewai.flow.persistence.base import FlowPersistence
from pydantic import BaseModel, PrivateAttr

from shared.errors import SessionNotFound
from shared.models import GameState

__all__ = ["SessionFlowPersistence", "StateLoader"]

StateLoader = Callable[[str], GameState | None]


class SessionFlowPersistence(FlowPersistence):
    persistence_type: str = "pocket_portals_session"
    _loader: StateLoader = PrivateAttr()
    _staged: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    def __init__(self, loader: StateLoader, **data: Any) -> None:
        super().__init__(**data)
        self._loader = loader

    def init_db(self) -> None:
        """Nothing to set up: the session backend owns its storage."""

    def save_state(
        self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel
    ) -> None:
        data = state_data.model_dump() if isinstance(state_data, BaseModel) else dict(state_data)
        self._staged[flow_uuid] = data

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        state = self._loader(flow_uuid)
        if state is None:
            # A flow started on a missing session would play a blank game: refuse instead.
            raise SessionNotFound(flow_uuid)
        return state.model_dump()

    def staged(self, flow_uuid: str) -> dict[str, Any] | None:
        return self._staged.get(flow_uuid)
