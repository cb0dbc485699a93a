"""Session backends: where games, turns and events live."""

from __future__ import annotations

from shared.backends.base import Admission, IdempotencyClaim, NewTurn, SessionBackend
from shared.backends.memory import InMemoryBackend
from shared.backends.redis import RedisBackend
from shared.settings import BackendKind, Settings

__all__ = [
    "Admission",
    "IdempotencyClaim",
    "InMemoryBackend",
    "NewTurn",
    "RedisBackend",
    "SessionBackend",
    "create_backend",
]


def create_backend(settings: Settings) -> SessionBackend:
    """A new backend for the calling event loop, as the settings choose."""
    if settings.session_backend is BackendKind.MEMORY:
        return InMemoryBackend(
            session_ttl=settings.redis_session_ttl,
            events_maxlen=settings.events_maxlen,
            turn_records_kept=settings.turn_records_kept,
        )
    return RedisBackend.from_settings(settings)
