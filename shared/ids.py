"""Identifiers and secrets: how they are made and what a valid one looks like.

Ids reach Redis key names, so anything that did not come from these generators is refused
before a key is built from it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = [
    "event_order",
    "is_event_id",
    "is_session_id",
    "is_turn_id",
    "new_player_token",
    "new_session_id",
    "new_turn_id",
    "token_hash",
    "token_matches",
]

# 18 random bytes → 24 url-safe characters, 144 bits.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{24}")
# 12 random bytes → 16 url-safe characters; unique within a session is all that is needed.
_TURN_ID = re.compile(r"[A-Za-z0-9_-]{16}")
_EVENT_ID = re.compile(r"\d{1,20}(-\d{1,20})?")


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


def new_turn_id() -> str:
    return secrets.token_urlsafe(12)


def new_player_token() -> str:
    """A 256-bit bearer secret; only its hash is stored."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # The token carries 256 random bits, so a fast hash is enough: there is nothing to
    # brute-force that a slow KDF would protect.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)


def is_session_id(value: str) -> bool:
    return _SESSION_ID.fullmatch(value) is not None


def is_turn_id(value: str) -> bool:
    return _TURN_ID.fullmatch(value) is not None


_U64 = 2**64 - 1


def is_event_id(value: str) -> bool:
    # Both parts must fit Redis stream ids (unsigned 64-bit), or XREAD refuses the cursor.
    return _EVENT_ID.fullmatch(value) is not None and all(
        int(part) <= _U64 for part in value.split("-")
    )


def event_order(event_id: str) -> tuple[int, int]:
    """A (valid) event id as a sortable key, as Redis orders stream ids: "5" is "5-0"."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)
