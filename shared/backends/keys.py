"""Redis key names for one session.

Every key of a session carries the hash tag `{<session_id>}`, so the multi-key scripts stay
in one Redis Cluster slot. Ids are validated by the gateway before they get here; `SessionKeys`
refuses anything else as a second line of defence against key injection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.ids import is_session_id

__all__ = [
    "ACTIVE_SESSIONS",
    "DEFAULT_QUEUE",
    "AdmissionKeys",
    "KEY_PREFIX",
    "pending_sessions_key",
    "RATE_LIMIT_PREFIX",
    "SessionKeys",
    "client_digest",
    "client_usage_key",
    "rate_limit_key",
]

KEY_PREFIX = "pocket_portals:session:"
RATE_LIMIT_PREFIX = "pocket_portals:ratelimit:"
# A sorted set of session ids with turns waiting, scored by when they were marked, per task
# queue: the sweeper of a queue's workers queues again only the sessions sent to that queue
# (deployments, or test runs, that share a Redis never sweep each other's). The default
# queue keeps the set's first name. Outside any session's slot: single-key commands only.
DEFAULT_QUEUE = "pocket_portals.turns"


def client_usage_key(client: str, day: str) -> str:
    """LLM tokens a client (its `client_digest`) used on a UTC day (`yyyymmdd`), all its
    sessions together."""
    return f"pocket_portals:usage:{client}:{day}"


def pending_sessions_key(queue: str = DEFAULT_QUEUE) -> str:
    base = "pocket_portals:pending"
    return base if queue == DEFAULT_QUEUE else f"{base}:{queue}"


# Session ids scored by their latest accepted turn, for the active-sessions gauge; trimmed
# to a window whenever it is counted.
ACTIVE_SESSIONS = "pocket_portals:active"


def client_digest(client: str) -> str:
    # Hashed: a client identity (an address from a proxy header) never shapes a key name.
    return hashlib.sha256(client.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass(frozen=True)
class AdmissionKeys:
    """The admission tickets of the turns accepted and not yet finished, for the workers of
    one task queue (`scope`): the bound is on how far behind those workers fall. `turns`:
    ticket (turn id) -> when it lapses by itself; `clients`: ticket -> client digest;
    `client(digest)`: that client's tickets. One hash tag: one Cluster slot."""

    scope: str

    @property
    def _prefix(self) -> str:
        tag = self.scope.replace("{", "").replace("}", "")
        return f"pocket_portals:{{admission:{tag}}}"

    @property
    def turns(self) -> str:
        return f"{self._prefix}:turns"

    @property
    def clients(self) -> str:
        return f"{self._prefix}:clients"

    def client(self, digest: str) -> str:
        return f"{self._prefix}:client:{digest}"


def rate_limit_key(client: str, window_number: int) -> str:
    return f"{RATE_LIMIT_PREFIX}{client_digest(client)}:{window_number}"


@dataclass(frozen=True)
class SessionKeys:
    session_id: str

    def __post_init__(self) -> None:
        if not is_session_id(self.session_id):
            raise ValueError("not a session id")

    @property
    def state(self) -> str:
        return f"{KEY_PREFIX}{{{self.session_id}}}"

    @property
    def inbox(self) -> str:
        return f"{self.state}:inbox"

    @property
    def turns(self) -> str:
        return f"{self.state}:turns"

    @property
    def turn_log(self) -> str:
        return f"{self.state}:turnlog"

    @property
    def idempotency(self) -> str:
        return f"{self.state}:idem"

    @property
    def events(self) -> str:
        return f"{self.state}:events"

    @property
    def lease(self) -> str:
        return f"{self.state}:lease"

    def expiring(self) -> list[str]:
        """The keys that live and die with the session, in the order the scripts expect."""
        return [self.state, self.inbox, self.turns, self.turn_log, self.idempotency, self.events]

    @property
    def usage(self) -> str:
        """LLM tokens the session used: `total`, and `day:<yyyymmdd>` per UTC day."""
        return f"{self.state}:usage"

    def all(self) -> list[str]:
        return [*self.expiring(), self.lease, self.usage]
