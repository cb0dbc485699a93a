"""What a live event stream has relayed of each turn's narration, so that it can send the end
it could not read.

A turn's last narration deltas are written just before its commit, and the commit compacts a
finished turn's deltas away (only its final event is retained). A stream whose next read
comes after the commit finds `turn.completed` alone, and its client's deltas would not add up
to `result.narrative`, as docs/api.md promises. The stream then sends the missing end itself,
as `narration.delta` events without an id, cut by speaker as the worker cut them; only for a
turn followed from its start or its last restart. A resumed stream is first told what its
client heard: the events retained up to its cursor (`api.routes.events`).
"""

from __future__ import annotations

from typing import Any

from shared.models import EventName, SessionEvent

__all__ = ["NarrationRelay", "untold"]

_SPEAKER_BREAK = "\n\n"  # as the worker joins one agent's words to the next's
# The narrators whose words stream as deltas (the offline narrator's and a budget's do not).
_STREAMED = frozenset({"llm", "offline_fallback"})


def _texts(result: dict[str, Any]) -> list[tuple[str, str]]:
    lines = result.get("lines")
    if not isinstance(lines, list):
        return []
    return [
        (str(line.get("speaker", "narrator")), str(line.get("text", "")))
        for line in lines
        if isinstance(line, dict)
    ]


def untold(told: str, result: dict[str, Any]) -> list[dict[str, str]]:
    """The pieces of `result`'s narrative after `told` (its beginning), one per speaker; none
    when `told` is not its beginning."""
    narrative = str(result.get("narrative") or "")
    if len(told) >= len(narrative) or not narrative.startswith(told):
        return []
    lines = _texts(result)
    if _SPEAKER_BREAK.join(text for _, text in lines) != narrative:
        return [{"text": narrative[len(told) :], "speaker": "narrator"}]  # cannot be cut
    pieces: list[dict[str, str]] = []
    start = 0
    for number, (speaker, line) in enumerate(lines):
        text = (_SPEAKER_BREAK if number else "") + line
        end = start + len(text)
        if end > len(told):
            pieces.append({"text": text[max(0, len(told) - start) :], "speaker": speaker})
        start = end
    return pieces


class NarrationRelay:
    """Per turn followed live from its start or last restart: the text of the deltas relayed
    since then."""

    def __init__(self) -> None:
        self._told: dict[str, str] = {}

    def missing(self, event: SessionEvent) -> list[dict[str, str]]:
        """Called with each event before it is sent: the deltas to send first (with the
        event's `turn_id`) if it ends a followed turn whose narration fell short."""
        turn_id = event.turn_id
        if turn_id is None:
            return []
        if event.event == EventName.TURN_STARTED and "waiting" not in event.data:
            self._told.setdefault(turn_id, "")
        elif event.event == EventName.TURN_RESTARTED:
            self._told[turn_id] = ""
        elif event.event == EventName.NARRATION_DELTA and turn_id in self._told:
            self._told[turn_id] += str(event.data.get("text", ""))
        elif event.event in (EventName.TURN_COMPLETED, EventName.TURN_FAILED):
            told = self._told.pop(turn_id, None)
            result = event.data.get("result")
            if (
                told is not None
                and event.event == EventName.TURN_COMPLETED
                and isinstance(result, dict)
                and result.get("narrator") in _STREAMED
            ):
                return [{"turn_id": turn_id, **piece} for piece in untold(told, result)]
        return []
