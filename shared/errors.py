"""The service's exception hierarchy.

Every error a player can cause or see derives from `PortalsError` and carries a stable
snake_case `code` plus the ids it concerns as attributes. The gateway maps them to HTTP in
one place (`api.errors`); workers turn them into a turn's readable `error`.

    PortalsError
    ├── ConfigurationError        start-up refused: settings that cannot work together
    ├── RequestError              the client's fault (4xx)
    │   ├── InvalidRequest            422 invalid_request
    │   │   └── ChoiceOutOfRange          (a choice_index the player was not offered)
    │   ├── Unauthorized              401 unauthorized
    │   ├── SessionNotFound           404 session_not_found (also: wrong token)
    │   ├── TurnNotFound              404 turn_not_found
    │   ├── IdempotencyKeyReused      422 idempotency_key_reused
    │   ├── AdventureCompleted        409 adventure_completed
    │   ├── PayloadTooLarge           413 payload_too_large
    │   ├── TooManyPendingTurns       429 too_many_pending_turns
    │   ├── TooManyTurnsInFlight      429 too_many_turns_in_flight (one client, all sessions)
    │   ├── TooManyStreams            429 too_many_streams
    │   └── RateLimited               429 rate_limited
    ├── ServiceError              the service's fault or state (5xx)
    │   ├── BackendUnavailable        503 backend_unavailable
    │   ├── Overloaded                503 overloaded
    │   └── SchemaTooNew              503 schema_too_new (a newer service version wrote it)
    ├── VersionConflict           a commit lost a compare-and-set (internal, retried)
    ├── LeaseLost                 a worker no longer holds a session's lease (internal)
    ├── NarratorUnavailable       the LLM failed after its retries (fallback or failed turn)
    └── TurnFailed                a turn's step could not be applied (becomes status "failed")
"""

from __future__ import annotations

__all__ = [
    "AdventureCompleted",
    "BackendUnavailable",
    "ChoiceOutOfRange",
    "ConfigurationError",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "LeaseLost",
    "Overloaded",
    "PayloadTooLarge",
    "NarratorUnavailable",
    "PortalsError",
    "RateLimited",
    "RequestError",
    "SchemaTooNew",
    "ServiceError",
    "SessionNotFound",
    "TooManyPendingTurns",
    "TooManyStreams",
    "TooManyTurnsInFlight",
    "TurnFailed",
    "TurnNotFound",
    "Unauthorized",
    "VersionConflict",
]


class PortalsError(Exception):
    code: str = "internal_error"
    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(PortalsError):
    code = "configuration_error"


class RequestError(PortalsError):
    status_code = 400


class InvalidRequest(RequestError):
    code = "invalid_request"
    status_code = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ChoiceOutOfRange(InvalidRequest):
    def __init__(self, choices: int) -> None:
        super().__init__(f"choice_index must be between 1 and {choices}.", field="choice_index")
        self.choices = choices


class Unauthorized(RequestError):
    code = "unauthorized"
    status_code = 401

    def __init__(
        self, message: str = "A player token is required: Authorization: Bearer <token>."
    ) -> None:
        super().__init__(message)


class SessionNotFound(RequestError):
    code = "session_not_found"
    status_code = 404

    def __init__(self, session_id: str) -> None:
        super().__init__("No such session, or it has expired.")
        self.session_id = session_id


class TurnNotFound(RequestError):
    code = "turn_not_found"
    status_code = 404

    def __init__(self, session_id: str, turn_id: str) -> None:
        super().__init__("No such turn in this session.")
        self.session_id = session_id
        self.turn_id = turn_id


class IdempotencyKeyReused(RequestError):
    code = "idempotency_key_reused"
    status_code = 422

    def __init__(self, session_id: str, key: str) -> None:
        super().__init__("This Idempotency-Key was already used with a different request body.")
        self.session_id = session_id
        self.key = key


class AdventureCompleted(RequestError):
    code = "adventure_completed"
    status_code = 409

    def __init__(self, session_id: str) -> None:
        super().__init__("This adventure has ended; start a new session to play again.")
        self.session_id = session_id


class PayloadTooLarge(RequestError):
    code = "payload_too_large"
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit


class TooManyPendingTurns(RequestError):
    code = "too_many_pending_turns"
    status_code = 429

    def __init__(self, session_id: str, limit: int, retry_after: int = 2) -> None:
        super().__init__(f"This session already has {limit} turns waiting; wait for one to finish.")
        self.session_id = session_id
        self.limit = limit
        self.retry_after = retry_after


class TooManyTurnsInFlight(RequestError):
    code = "too_many_turns_in_flight"
    status_code = 429

    def __init__(self, limit: int, retry_after: int = 2) -> None:
        super().__init__(
            f"This client already has {limit} turns waiting or running, across its sessions; "
            "wait for one to finish."
        )
        self.limit = limit
        self.retry_after = retry_after


class TooManyStreams(RequestError):
    code = "too_many_streams"
    status_code = 429

    def __init__(self, limit: int, retry_after: int = 10) -> None:
        super().__init__(
            f"This client already has {limit} event streams open; close one before opening more."
        )
        self.limit = limit
        self.retry_after = retry_after


class RateLimited(RequestError):
    code = "rate_limited"
    status_code = 429

    def __init__(self, limit: int, retry_after: int, what: str = "requests") -> None:
        super().__init__(f"More than {limit} {what} a minute from this client; slow down.")
        self.limit = limit
        self.retry_after = retry_after


class ServiceError(PortalsError):
    status_code = 503


class BackendUnavailable(ServiceError):
    code = "backend_unavailable"

    def __init__(self, component: str, retry_after: int = 2) -> None:
        super().__init__(f"The {component} is unavailable; try again shortly.")
        self.component = component
        self.retry_after = retry_after


class Overloaded(ServiceError):
    code = "overloaded"

    def __init__(
        self,
        retry_after: int = 5,
        message: str = "The service is overloaded; try again shortly.",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SchemaTooNew(ServiceError):
    """A stored state of a schema newer than this code knows: written by a newer version of
    the service (a rolling upgrade in progress). Never guessed at; a newer process can serve it."""

    code = "schema_too_new"
    status_code = 503

    def __init__(self, session_id: str, found: int, supported: int) -> None:
        super().__init__(
            "This session was saved by a newer version of the service; try again shortly."
        )
        self.session_id = session_id
        self.found = found
        self.supported = supported
        self.retry_after = 5


class VersionConflict(PortalsError):
    code = "version_conflict"
    status_code = 409

    def __init__(self, session_id: str, expected: int) -> None:
        super().__init__(f"Session {session_id} moved past version {expected}.")
        self.session_id = session_id
        self.expected = expected


class LeaseLost(PortalsError):
    code = "lease_lost"

    def __init__(self, session_id: str, holder: str) -> None:
        super().__init__(f"Lease on session {session_id} is no longer held by {holder}.")
        self.session_id = session_id
        self.holder = holder


class NarratorUnavailable(PortalsError):
    code = "narrator_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__("The storyteller is not answering right now; try again shortly.")
        # What went wrong, for logs: an exception type or HTTP status, never a key or URL.
        self.reason = reason


class TurnFailed(PortalsError):
    code = "turn_failed"

    def __init__(
        self, session_id: str, turn_id: str, message: str, code: str = "turn_failed"
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.turn_id = turn_id
        self.code = code
