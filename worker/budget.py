"""The daily LLM token budgets of a session and of a client (`LLM_TOKENS_PER_SESSION_PER_DAY`,
`LLM_TOKENS_PER_CLIENT_PER_DAY`): which narrator a turn is told with, and counting what a
committed turn used. Days are UTC days.
"""

from __future__ import annotations

import logging
import time

from shared.backends import SessionBackend
from shared.errors import BackendUnavailable
from shared.models import TurnRecord
from shared.settings import Settings

__all__ = ["OFFLINE_BUDGET", "count_llm_tokens", "settings_for"]

# A turn's lines keep the pipeline's logger name wherever their code lives: operators (and
# the tests) pick the pipeline's lines by it.
logger = logging.getLogger("worker.pipeline")

# The narrator a turn's result names when it was told offline for want of tokens.
OFFLINE_BUDGET = "offline_budget"


def _utc_day() -> str:
    return time.strftime("%Y%m%d", time.gmtime())


async def settings_for(backend: SessionBackend, settings: Settings, turn: TurnRecord) -> Settings:
    """The settings to tell `turn` with: the offline narrator's once the session or its
    client has used its LLM tokens for the day (`settings` itself otherwise)."""
    per_session = settings.llm_tokens_per_session_per_day
    per_client = settings.llm_tokens_per_client_per_day
    if settings.narrator != "llm" or (per_session is None and per_client is None):
        return settings
    used = await backend.llm_tokens(turn.session_id, turn.client, _utc_day())
    if (per_session is not None and used.session_today >= per_session) or (
        per_client is not None and turn.client and used.client_today >= per_client
    ):
        return settings.model_copy(update={"narrator": "offline"})
    return settings


async def count_llm_tokens(backend: SessionBackend, turn: TurnRecord, tokens: int) -> None:
    """Count the tokens a committed turn used against its session's and client's day."""
    try:
        await backend.add_llm_tokens(turn.session_id, turn.client, _utc_day(), tokens)
    except BackendUnavailable:
        # The turn is committed; only its count is lost (the budget errs generous).
        logger.warning("a turn's LLM tokens went uncounted: the store is unavailable")
