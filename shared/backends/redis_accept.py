"""A new turn in one round trip (`accept_owned_turn`): ACCEPT_OWNED checks the player's token
and the turn against the state's menu, takes the turn's admission ticket, marks the session
pending and queues the turn, where the two steps (ADMIT with the state, then ACCEPT) took two
round trips and decoded the whole state in the gateway. A standalone or Sentinel-managed
store only: on a Cluster the tickets and the pending marks are in other slots."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.backends.base import Admission, NewTurn
from shared.backends.keys import ACTIVE_SESSIONS, SessionKeys
from shared.backends.redis_base import RedisBase
from shared.backends.redis_documents import dump_record, event_data, split_record
from shared.errors import (
    AdventureCompleted,
    ChoiceOutOfRange,
    IdempotencyKeyReused,
    SessionNotFound,
    TooManyPendingTurns,
)
from shared.models import TurnRecord

__all__ = ["RedisAccept"]


class RedisAccept(RedisBase):
    async def accept_owned_turn(self, turn: NewTurn) -> TurnRecord | None:
        record = turn.record
        if record.client is None or isinstance(self.client, aioredis.RedisCluster):
            return None
        session_id = record.session_id
        running = record.next_attempt(None)
        if turn.choice_index is None:
            packed: list[str | bytes] = [dump_record(record, self.codec), "", ""]
            running_packed: list[str | bytes] = [dump_record(running, self.codec), "", ""]
        else:
            # Joined around the chosen action by the script: plain JSON, which every reader
            # takes (the record is written again, packed, when its turn starts and ends).
            packed = ["", *split_record(record)]
            running_packed = ["", *split_record(running)]
        claim = turn.idempotency
        now = record.accepted_at
        keys = SessionKeys(session_id)
        reply = await self._run(
            "ACCEPT_OWNED",
            [
                *keys.expiring(),
                *self._ticket_keys(record.client),
                self.pending_sessions,
                ACTIVE_SESSIONS,
            ],
            [
                record.turn_id,
                packed[0],
                turn.max_pending,
                self.session_ttl,
                self.session_ttl_slack,
                claim.key if claim else "",
                claim.fingerprint if claim else "",
                event_data(record),
                self.turn_records_kept,
                running_packed[0],
                turn.owner_hash,
                "" if turn.choice_index is None else turn.choice_index,
                packed[1],
                packed[2],
                running_packed[1],
                running_packed[2],
                now,
                now + turn.ticket_ttl,
                turn.max_total,
                turn.max_per_client,
                record.client,
                session_id,
                now,
            ],
        )
        outcome = reply[0]
        if outcome == "accepted":
            return (
                record
                if turn.choice_index is None
                else record.model_copy(update={"action": reply[1]})
            )
        if outcome == "legacy":
            return None
        if outcome == "duplicate":
            return await self._earlier_turn(session_id, reply[1], reply[2])
        self._refuse(turn, outcome, reply)
        raise AssertionError(f"ACCEPT_OWNED answered {reply!r}")

    @staticmethod
    def _refuse(turn: NewTurn, outcome: str, reply: list[object]) -> None:
        session_id = turn.record.session_id
        if outcome == "missing":
            raise SessionNotFound(session_id)
        if outcome == "reused":
            assert turn.idempotency is not None
            raise IdempotencyKeyReused(session_id, turn.idempotency.key)
        if outcome == "completed":
            raise AdventureCompleted(session_id)
        if outcome == "bad_choice":
            raise ChoiceOutOfRange(int(str(reply[1])))
        if outcome == "busy":
            raise TooManyPendingTurns(session_id, turn.max_pending)
        if outcome in (Admission.OVERLOADED, Admission.CLIENT_BUSY):
            Admission(outcome).refuse(turn.max_per_client)
