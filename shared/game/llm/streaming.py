"""Splitting a streamed narrator reply into the narrative (streamed to the player as it comes)
and the choices after the marker (parsed at the end). Pure: no I/O.

The narrator is asked to answer

    <narrative prose>
    ###
    1. <choice>
    2. <choice>

Chunks may split the marker or the whitespace around it anywhere, so a little text is held
back until it is certain to be narrative. What was emitted, concatenated, is exactly the final
narrative: a client that shows the deltas shows what the turn's result says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MARKER", "NarrativeSplitter", "SplitResult"]

MARKER = "###"


@dataclass
class SplitResult:
    narrative: str
    tail: str | None  # the text after the marker, None if there was no marker


@dataclass
class NarrativeSplitter:
    _buffer: str = ""
    _emitted: list[str] = field(default_factory=list)
    _done: bool = False  # the marker was seen
    _tail: str = ""

    def feed(self, chunk: str) -> str:
        """Take one chunk; return the part of it that is now certainly narrative ('' if none)."""
        if self._done:
            self._tail += chunk
            return ""
        self._buffer += chunk
        at = self._buffer.find(MARKER)
        if at >= 0:
            safe, self._tail = self._buffer[:at].rstrip(), self._buffer[at + len(MARKER) :]
            self._buffer, self._done = "", True
            return self._emit(safe)
        # Hold back what could still become the marker, and trailing whitespace, which is
        # narrative only if more narrative follows it.
        keep = len(self._buffer) - len(self._buffer.rstrip())
        for size in range(min(len(MARKER) - 1, len(self._buffer)), 0, -1):
            if MARKER.startswith(self._buffer[-size:]):
                keep = max(
                    keep, size + len(self._buffer[:-size]) - len(self._buffer[:-size].rstrip())
                )
                break
        safe, self._buffer = (
            self._buffer[: len(self._buffer) - keep],
            self._buffer[len(self._buffer) - keep :],
        )
        return self._emit(safe)

    def _emit(self, text: str) -> str:
        if not self._emitted:
            text = text.lstrip()
        if text:
            self._emitted.append(text)
        return text

    def finish(self) -> tuple[str, SplitResult]:
        """End of stream: the last narrative piece to emit, and the whole split."""
        last = "" if self._done else self._emit(self._buffer.rstrip())
        self._buffer = ""
        return last, SplitResult("".join(self._emitted), self._tail if self._done else None)
