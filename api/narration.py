"""What a live event stream has relayed of each turn's narration, so that it can send the end
it could not read.

A turn's last narration deltas are written just before its commit, and the commit compacts a
finished turn's deltas away (only its final event is retained). A stream whose next read
comes after the commit finds `turn.completed` alone, and its client's deltas would not add up
to `result.narrative`, as docs/api.md promises. The stream then sends the missing end itself,
as `narration.delta` events without an id, cut by speaker as the worker cut them.
"""

from __future__ import annotations

from typing import Any

from shared.models import EventName, SessionEvent

__all__ = ["NarrationRelay", "untold"]

_SPEAKER_BREAK = "\n\n"  # as the worker joins one agent's words to the next's


def untold(told: str, result: dict[str, Any]) -> list[dict[str, str]]:
    """The pieces of `result`'s narrative after `told` (its beginning), one per speaker; none
    when `told` is not its beginning (the stream did not follow the whole attempt)."""
    narrative = str(result.get("narrative") or "")
    if len(told) >= len(narrative) or not narrative.startswith(told):
        return []
    lines = result.get("lines") or [{"speaker": "narrator", "text": narrative}]
    pieces: list[dict[str, str]] = []
    start = 0
    for number, line in enumerate(lines):
        text = (_SPEAKER_BREAK if number else "") + str(line.get("text", ""))
        end = start + len(text)
        if end > len(told):
            piece = text[max(0, len(told) - start) :]
            pieces.append({"text": piece, "speaker": str(line.get("speaker", "narrator"))})
        start = end
    if start != len(narrative):  # lines that do not make up the narrative: one piece
        return [{"text": narrative[len(told) :], "speaker": "narrator"}]
    return pieces


class NarrationRelay:
    """Per turn followed live: the text of its deltas relayed since its last restart."""

    def __init__(self) -> None:
        self._told: dict[str, str] = {}

    def missing(self, event: SessionEvent) -> list[dict[str, str]]:
        """Called with each event before it is sent: the deltas to send first (with the
        event's `turn_id`) if it ends a turn whose narration this stream relayed in part."""
        turn_id = event.turn_id
        if turn_id is None:
            return []
        if event.event == EventName.NARRATION_DELTA:
            self._told[turn_id] = self._told.get(turn_id, "") + str(event.data.get("text", ""))
        elif event.event == EventName.TURN_RESTARTED:
            self._told[turn_id] = ""
        elif event.event in (EventName.TURN_COMPLETED, EventName.TURN_FAILED):
            told = self._told.pop(turn_id, "")
            # Only a turn this stream heard some of: a turn told offline sends no deltas, and
            # a stream that joined after its deltas were gone has nothing to complete.
            if told and event.event == EventName.TURN_COMPLETED:
                pieces = untold(told, dict(event.data.get("result") or {}))
                return [{"turn_id": turn_id, **piece} for piece in pieces]
        return []
