"""Streaming the narrative part of a Narrator reply as it is generated, and nothing else.
Pure: no I/O.

The reply is read in full at the end by `reply.parse_reply`, which copes with every shape a
model answers in. While it streams, `ReplyStream` passes on only text that is certainly
narrative, so a player never sees scaffolding flash by:

- the start is held back until it is known not to be the agent shape's `Thought:` /
  `Final Answer:`, a markdown fence, a JSON object, a label or a preamble line; those are
  dropped (a JSON object, or thoughts without an answer, are held to the end);
- a story that opens with a quote is held until the quote closes: a quoted story loses its
  quotes, dialogue keeps them;
- the `###` marker, a line that may turn out to be an option (`1.`, `-`) or an `Options:`
  heading, and trailing whitespace are held until more narrative follows them.

`finish` parses the whole reply. Normally what was passed on is the start of the parsed
narrative and the rest follows as the last piece; if the parse reads the reply differently
(a shape the stream guessed wrong), the caller is told to restart the turn's stream and gets
the whole narrative: what a client shows always adds up to the turn's result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.game.llm.reply import (
    FINAL_ANSWER,
    HEADING,
    LABEL,
    LIST_ITEM,
    MARKER,
    OPENERS,
    PREAMBLE,
    THOUGHT,
    ParsedReply,
    answer_start,
    parse_reply,
)

__all__ = ["MARKER", "Finished", "ReplyStream"]

_SCAFFOLDS = (
    "thought:",
    "action:",
    "observation:",
    "final answer:",
    "```",
    "narrative:",
    "narration:",
    "story:",
    "response:",
    "answer:",
)
_HEADINGS = (
    "options",
    "choices",
    "your options",
    "your choices",
    "the options",
    "what will you do",
    "what do you do",
)
_OPEN_QUOTES = {'"': '"', "“": "”", "«": "»"}
_FENCE = re.compile(r"^[ \t]*```")
_PREAMBLE_LIMIT = 240  # a first line longer than this is story, whatever it starts with


@dataclass(frozen=True)
class Finished:
    last: str  # the narrative's remaining text, to pass on
    restart: bool  # what was passed on is void: the caller restarts the stream, then sends `last`
    reply: ParsedReply


def _could_become(text: str, words: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(word.startswith(lowered) for word in words)


def _option_or_heading(line: str) -> bool:
    return bool(LIST_ITEM.match(line) or HEADING.match(line))


def _ambiguous_line_start(line: str) -> bool:
    """Whether a line begun with `line` could still be an option, a heading, a fence or the
    marker."""
    stripped = line.lstrip(" \t*").lower()
    if not stripped:
        return True
    if stripped[0] in "0123456789-*•`#":
        return True
    return any(h.startswith(stripped) or stripped.startswith(h) for h in _HEADINGS)


def _start_step(text: str) -> tuple[str, str]:
    """What the start of a reply is: ("wait", text) until that can be told, ("skip", rest)
    past one piece of scaffolding, ("hold", text) for a shape only the final parse can read,
    ("story", text) when the story begins."""
    if not text:
        return "wait", text
    if text.startswith("{"):
        return "hold", text
    first_line, newline, rest = text.partition("\n")
    if THOUGHT.match(text):
        answer = answer_start(text)
        return ("wait", text) if answer is None else ("skip", text[answer:])
    label = FINAL_ANSWER.match(text) or LABEL.match(text)
    if label:
        return "skip", text[label.end() :]
    if text.startswith("```"):
        return ("skip", rest) if newline else ("wait", text)
    if not newline and _could_become(text, _SCAFFOLDS + OPENERS):
        return "wait", text
    if first_line.lower().startswith(OPENERS):
        if not newline:
            return ("wait" if len(first_line) < _PREAMBLE_LIMIT else "story"), text
        if PREAMBLE.match(first_line):
            return ("skip", rest) if rest.strip() else ("wait", text)
    return "story", text


@dataclass
class ReplyStream:
    _raw: list[str] = field(default_factory=list)
    _pending: str = ""
    _mode: str = "start"  # start | quote | prose | hold | done
    _emitted: list[str] = field(default_factory=list)

    def feed(self, chunk: str) -> str:
        """Take one chunk; return the part of the text that is now certainly narrative."""
        self._raw.append(chunk)
        if self._mode in ("hold", "done"):
            return ""
        self._pending += chunk
        if self._mode == "start":
            self._classify_start()
        if self._mode == "quote":
            self._settle_quote()
        return self._release() if self._mode == "prose" else ""

    @property
    def received(self) -> bool:
        return bool(self._raw)

    def finish(self, expected: int, player_text: str = "") -> Finished:
        reply = parse_reply("".join(self._raw), expected, player_text)
        emitted = "".join(self._emitted)
        self._mode = "done"
        if reply.narrative.startswith(emitted):
            return Finished(reply.narrative[len(emitted) :], False, reply)
        return Finished(reply.narrative, True, reply)

    def _classify_start(self) -> None:
        # Drop one piece of scaffolding at a time until the story's first words show.
        while True:
            text = self._pending.lstrip()
            step, self._pending = _start_step(text)
            if step == "skip":
                continue
            if step == "story":
                self._mode = "quote" if text[0] in _OPEN_QUOTES else "prose"
            elif step == "hold":
                self._mode = "hold"
            return

    def _settle_quote(self) -> None:
        opening = self._pending[0]
        close = self._pending.find(_OPEN_QUOTES[opening], 1)
        if close < 0:
            return
        after = self._pending[close + 1 :].lstrip()
        if not after:
            return  # the reply may end here: a quoted story
        if after[0] in "#0123456789-*•":  # the marker or the options follow: a quoted story
            self._pending = self._pending[1:close] + self._pending[close + 1 :]
        self._mode = "prose"

    def _release(self) -> str:
        at = self._pending.find(MARKER)
        if at >= 0:
            safe = self._pending[:at].rstrip()
            self._pending, self._mode = "", "done"
            return self._emit(self._drop_held_lines(safe))
        releasable = self._releasable_end()
        safe, self._pending = self._pending[:releasable], self._pending[releasable:]
        return self._emit(safe)

    def _drop_held_lines(self, text: str) -> str:
        # Before the marker, lines of options, a heading or a closing fence are scaffolding.
        lines = text.split("\n")
        while lines and (
            not lines[-1].strip() or _option_or_heading(lines[-1]) or _FENCE.match(lines[-1])
        ):
            lines.pop()
        return "\n".join(lines).rstrip()

    def _releasable_end(self) -> int:
        """How much of the pending text is certainly narrative."""
        text = self._pending
        released = 0
        start = 0
        while True:
            newline = text.find("\n", start)
            if newline < 0:
                break
            line = text[start:newline]
            if _FENCE.match(line):  # a fence line is dropped, as the parse drops it
                text = text[:start] + text[newline + 1 :]
                self._pending = text
                continue
            if line.strip() and not _option_or_heading(line):
                released = newline  # prose: what came before it was narrative too
            start = newline + 1
        partial = text[start:]
        if partial and not _ambiguous_line_start(partial):
            released = len(text)
        # Trailing whitespace and a possible start of the marker wait for what follows.
        end = len(text[:released].rstrip())
        for size in range(min(len(MARKER) - 1, end), 0, -1):
            if MARKER.startswith(text[end - size : end]):
                end = len(text[: end - size].rstrip())
                break
        return end

    def _emit(self, text: str) -> str:
        if not self._emitted:
            text = text.lstrip()
        if text:
            self._emitted.append(text)
        return text
