"""A live stream completes a turn's narration that the commit compacted away before the
stream read it: the deltas it sends still add up to `result.narrative` (docs/api.md)."""

from __future__ import annotations

import json
from typing import Any

from sse_starlette import ServerSentEvent

from api.narration import NarrationRelay, untold
from api.routes.events import _stream
from api.streams import StreamRegistry
from shared.ids import event_order
from shared.models import SessionEvent

STORY = "Lantern light spills on the board."
INNKEEPER = "Mind the marsh road."
RESULT = {
    "narrator": "llm",
    "narrative": f"{STORY}\n\nThe innkeeper says: {INNKEEPER}",
    "lines": [
        {"speaker": "narrator", "text": STORY},
        {"speaker": "innkeeper", "text": f"The innkeeper says: {INNKEEPER}"},
    ],
}


def event(number: int, name: str, **data: Any) -> SessionEvent:
    return SessionEvent(id=f"{number}-0", event=name, data={"turn_id": "t1", **data})


def test_the_missing_end_is_cut_by_speaker() -> None:
    assert untold(STORY, RESULT) == [
        {"text": f"\n\nThe innkeeper says: {INNKEEPER}", "speaker": "innkeeper"}
    ]
    assert untold(STORY[:8], RESULT) == [
        {"text": STORY[8:], "speaker": "narrator"},
        {"text": f"\n\nThe innkeeper says: {INNKEEPER}", "speaker": "innkeeper"},
    ]
    assert untold(RESULT["narrative"], RESULT) == []  # all of it was heard
    assert untold("Something else", RESULT) == []  # not its beginning: nothing to complete
    assert untold("Lantern", {"narrative": "Lantern light"}) == [
        {"text": " light", "speaker": "narrator"}
    ]
    # Lines that do not make up the narrative: its end in one piece, not cut from them.
    odd = {"narrative": "Lantern light", "lines": [{"speaker": "jester", "text": "Lantern dark"}]}
    assert untold("Lantern", odd) == [{"text": " light", "speaker": "narrator"}]


def test_only_a_turn_followed_from_its_start_or_restart_is_completed() -> None:
    relay = NarrationRelay()
    assert relay.missing(event(1, "turn.started", attempt=1)) == []
    assert relay.missing(event(2, "narration.delta", text="An older attempt's words")) == []
    assert relay.missing(event(3, "turn.restarted", reason="llm_retry")) == []
    assert relay.missing(event(4, "narration.delta", text=STORY)) == []
    missing = relay.missing(event(5, "turn.completed", result=RESULT))
    assert [piece["speaker"] for piece in missing] == ["innkeeper"]
    assert all(piece["turn_id"] == "t1" for piece in missing)


def test_a_turn_whose_every_delta_was_compacted_is_told_whole() -> None:
    for opening in (
        event(1, "turn.started", attempt=1),
        event(1, "turn.restarted", reason="offline_fallback"),
    ):
        relay = NarrationRelay()
        relay.missing(opening)
        told = relay.missing(event(2, "turn.completed", result=RESULT))
        assert "".join(piece["text"] for piece in told) == RESULT["narrative"]


def test_nothing_is_added_where_no_delta_was_owed_or_the_start_was_not_seen() -> None:
    offline = {**RESULT, "narrator": "offline"}  # the offline narrator streams nothing
    relay = NarrationRelay()
    relay.missing(event(1, "turn.started", attempt=1))
    assert relay.missing(event(2, "turn.completed", result=offline)) == []
    # Resumed mid-turn: the client heard deltas this stream did not relay.
    resumed = NarrationRelay()
    resumed.missing(event(3, "narration.delta", text=STORY[:8]))
    assert resumed.missing(event(4, "turn.completed", result=RESULT)) == []
    # A wait notice is not a start; a failed turn gets nothing.
    waiting = NarrationRelay()
    waiting.missing(event(5, "turn.started", attempt=1, waiting="budget", wait_seconds=2))
    assert waiting.missing(event(6, "turn.completed", result=RESULT)) == []
    failed = NarrationRelay()
    failed.missing(event(7, "turn.started", attempt=1))
    assert failed.missing(event(8, "turn.failed", error={"code": "step_failed"})) == []


async def streamed(backend: Any, cursor: str, *, resumed: bool = False) -> list[ServerSentEvent]:
    """Everything the event stream sends from `cursor` until the session is gone."""
    streams = StreamRegistry(per_session=2, per_client=4)
    ticket = streams.open("s1", "client")
    return [
        message
        async for message in _stream(backend, "s1", cursor, 0.01, ticket, streams, resumed=resumed)
    ]


class ScriptedBackend:
    """The store as a stream sees it when the commit won the race: the turn's first delta,
    then (its last delta compacted away) the turn's end, then the session is gone."""

    def __init__(self, batches: list[list[SessionEvent]]) -> None:
        self.batches = batches

    async def read_events(self, session_id: str, cursor: str, timeout: float = 0.0) -> Any:
        return self.batches.pop(0) if self.batches else []

    async def exists(self, session_id: str) -> bool:
        return bool(self.batches)


async def test_the_stream_sends_what_the_commit_compacted_before_the_end() -> None:
    backend = ScriptedBackend(
        [
            [event(1, "turn.started", attempt=1), event(2, "narration.delta", text=STORY)],
            [event(4, "turn.completed", result=RESULT)],
        ]
    )
    sent = await streamed(backend, "0")
    names = [message.event for message in sent]
    assert names == ["turn.started", "narration.delta", "narration.delta", "turn.completed"]
    deltas = [json.loads(str(m.data)) for m in sent if m.event == "narration.delta"]
    assert "".join(d["text"] for d in deltas) == RESULT["narrative"]
    assert sent[2].id is None  # not a point to resume from


class ResumedBackend:
    """The store as a stream resumed at the turn's first delta sees it when the commit then
    won the race: retained up to the cursor, the turn's start and that delta; after it, the
    turn's end alone (its last delta compacted away)."""

    def __init__(self) -> None:
        self.retained = [
            event(1, "turn.started", attempt=1),
            event(2, "narration.delta", text=STORY),
            event(4, "turn.completed", result=RESULT),
        ]
        self.reads: list[str] = []

    async def read_events(self, session_id: str, cursor: str, timeout: float = 0.0) -> Any:
        self.reads.append(cursor)
        return [e for e in self.retained if event_order(e.id) > event_order(cursor)]

    async def exists(self, session_id: str) -> bool:
        return len(self.reads) < 4


async def test_a_stream_resumed_mid_turn_completes_it_from_what_its_client_heard() -> None:
    backend = ResumedBackend()
    sent = await streamed(backend, "2-0", resumed=True)
    assert [message.event for message in sent] == ["narration.delta", "turn.completed"]
    # What the client heard before (STORY) and what this stream sends add up to the whole.
    assert STORY + json.loads(str(sent[0].data))["text"] == RESULT["narrative"]
    assert sent[0].id is None
    assert backend.reads[0] == "0"  # the retained events, read once up to the cursor


async def test_a_stream_resumed_after_the_turn_ended_adds_nothing() -> None:
    backend = ResumedBackend()
    backend.retained = [event(4, "turn.completed", result=RESULT)]  # its deltas compacted
    sent = await streamed(backend, "2-0", resumed=True)
    assert [message.event for message in sent] == ["turn.completed"]
