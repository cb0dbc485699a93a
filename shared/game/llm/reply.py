"""Reading the Narrator's reply, whatever shape the model answered in. Pure: no I/O.

The Narrator is asked for prose, a line with `###`, then the player's options numbered one per
line. Models, small local ones most of all, also answer:

- in the "agent" shape: `Thought: …` lines, then `Final Answer: …` with the reply after it;
- inside a markdown fence (```` ``` ```` or ```` ```text ````), or with a preamble line
  ("Sure! Here is the next part:") or a label (`Narrative:`);
- as a JSON object (`{"narrative": "…", "choices": […]}`, or `story`/`options`, …);
- with the whole story in quotes;
- with the options listed but no `###` before them (under an `Options:` heading or not);
- with a different number of options than asked for.

`parse_reply` turns each into narration and choices and names every repair it made, so the
service can count them (`pocket_portals_llm_reply_repairs_total`). Choices that do not match
the rules' in number, or that a player could have planted (see `choice_is_acceptable`), are
refused as a whole: the caller shows the rules' own words instead. Scaffolding is never part
of the narrative: a reply that is all scaffolding has an empty one, which the caller replaces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared.game.llm.fence import has_format_characters

__all__ = [
    "MARKER",
    "answer_start",
    "MAX_CHOICE_LENGTH",
    "plain_words",
    "OPENERS",
    "ParsedReply",
    "Repair",
    "choice_is_acceptable",
    "parse_reply",
    "strip_scaffolding",
]

MARKER = "###"
MAX_CHOICE_LENGTH = 100


class Repair:
    """The names of the repairs `parse_reply` reports (the metric's `kind` label)."""

    AGENT = "agent_scaffolding"
    FENCE = "markdown_fence"
    JSON = "json_object"
    LABEL = "label"
    PREAMBLE = "preamble"
    QUOTED = "quoted_prose"
    NO_SEPARATOR = "no_separator"
    CHOICE_COUNT = "choice_count"
    CHOICE_REFUSED = "choice_refused"
    EMPTY = "empty_narrative"


@dataclass(frozen=True)
class ParsedReply:
    narrative: str
    # The reworded options, as many as asked for and each acceptable; None for the rules' own.
    choices: list[str] | None
    repairs: tuple[str, ...] = ()


FINAL_ANSWER = re.compile(r"(?im)^[ \t*]*final answer[ \t*]*:[ \t*]*")
THOUGHT = re.compile(r"(?i)^[ \t*]*(thought|action|observation)[ \t*]*:")
FENCE_LINE = re.compile(r"(?m)^[ \t]*```[^\n]*(\n|$)")
LABEL = re.compile(r"(?i)^[ \t*]*(narrative|narration|story|response|answer)[ \t*]*:[ \t*]*")
OPENERS = (
    "sure",
    "certainly",
    "of course",
    "okay",
    "ok",
    "absolutely",
    "alright",
    "all right",
    "great",
    "here",
    "below",
)
_ASSENT = r"(?:sure|certainly|of course|okay|ok|absolutely|alright|all right|great)"
# A line of talk to the asker, not story: an assent alone ("Sure!"), an assent with its
# punctuation that announces what follows ("Certainly, here's what happens next.", "Sure! The
# next part:"), or "Here is …:" ending with a colon. A story line that merely starts with one
# of these words ("Sure enough, …", "Here the road …", "Below you, …") is kept.
PREAMBLE = re.compile(
    rf"(?i)^[ \t]*(?:{_ASSENT}[!,.]?"
    rf"|{_ASSENT}[!,.][^\n]{{0,160}}(?:\bhere(?:'s| is)\b|\bstory\b|\bcontinu\w*|\bnext part\b)"
    rf"[^\n]{{0,80}}"
    rf"|{_ASSENT}[!,.][^\n]{{0,160}}:"
    rf"|(?:here(?:'s| is)|below is)\b[^\n]{{0,160}}:)[ \t]*$"
)
LIST_ITEM = re.compile(r"^[ \t]*(?:\*\*)?(?:\d{1,2}[.):]|[-*•])(?:\*\*)?[ \t]+(.+?)[ \t]*$")
HEADING = re.compile(
    r"(?i)^[ \t#*]*(?:your |the )?(?:options|choices|what (?:will|do) you do\??)[ \t*]*:?[ \t*]*$"
)
_QUOTES = {'"': '"', "“": "”", "«": "»"}
_JSON_NARRATIVE_KEYS = ("narrative", "narration", "story", "text", "description", "content")
_JSON_CHOICE_KEYS = ("choices", "options", "actions")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)|\b[\w-]+\.(?:com|net|org|io|ai|gg|ly|me)\b")
_INJECTED = re.compile(
    r"(?i)\b(?:system|assistant|developer|user)\s*:|ignore (?:all|any|the|previous|prior|above)"
    r"|rules decided|\byou win\b|<\|?/?\w*\|?>"
)


def _json_reply(body: str) -> tuple[str, list[str] | None] | None:
    try:
        data: Any = json.JSONDecoder().raw_decode(body)[0]
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    narrative = next((data[k] for k in _JSON_NARRATIVE_KEYS if isinstance(data.get(k), str)), "")
    raw_choices = next((data[k] for k in _JSON_CHOICE_KEYS if isinstance(data.get(k), list)), None)
    choices = None
    if raw_choices is not None:
        choices = [str(c.get("text", "") if isinstance(c, dict) else c) for c in raw_choices]
    return narrative, choices


def _unquoted(text: str) -> str | None:
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[0] not in text[1:-1]:
        return text[1:-1].strip()
    return None


def _split_trailing_list(body: str) -> tuple[str, str] | None:
    """(narrative, list) when the reply ends with a list of options and no marker."""
    lines = body.split("\n")
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and LIST_ITEM.match(lines[start - 1]):
        start -= 1
    if start == end:
        return None
    head = start
    while head and not lines[head - 1].strip():
        head -= 1
    if head and HEADING.match(lines[head - 1]):
        head -= 1
    narrative = "\n".join(lines[:head]).strip()
    return (narrative, "\n".join(lines[start:end])) if narrative else None


def _list_items(tail: str) -> list[str]:
    items = []
    for line in tail.split("\n"):
        match = LIST_ITEM.match(line)
        if match:
            item = match.group(1).strip().strip("*").strip()
            unquoted = _unquoted(item)
            items.append(unquoted if unquoted is not None else item)
    return items


def plain_words(text: str) -> bool:
    """Whether model output may be shown as it is: one line of plain words, no link, nothing
    that reads as an instruction to a model."""
    if _CONTROL.search(text) or has_format_characters(text):
        return False
    return not (_URL.search(text) or _INJECTED.search(text))


def choice_is_acceptable(choice: str, player_text: str = "") -> bool:
    """Whether a reworded option may be shown as a button: short, `plain_words`, and not an
    echo of what the player typed (a player could type the options they would like offered)."""
    if not 0 < len(choice) <= MAX_CHOICE_LENGTH or not plain_words(choice):
        return False
    echo = " ".join(player_text.lower().split())
    return not (
        len(echo) >= 24 and any(echo[i : i + 24] in choice.lower() for i in range(len(echo) - 23))
    )


def _choices(
    candidates: list[str] | None, expected: int, player_text: str, repairs: list[str]
) -> list[str] | None:
    if not candidates or expected == 0:
        return None
    cleaned = [" ".join(c.split()) for c in candidates]
    if len(cleaned) != expected or len(set(cleaned)) != expected:
        repairs.append(Repair.CHOICE_COUNT)
        return None
    if not all(choice_is_acceptable(c, player_text) for c in cleaned):
        repairs.append(Repair.CHOICE_REFUSED)
        return None
    return cleaned


def answer_start(text: str) -> int | None:
    """Where the answer after the agent shape's last `Final Answer:` begins, if there is one."""
    ends = [match.end() for match in FINAL_ANSWER.finditer(text)]
    return ends[-1] if ends else None


def strip_scaffolding(text: str, repairs: list[str]) -> str:
    """The reply without the agent shape's thoughts, fences, a label or a preamble line."""
    body = text.strip()
    answer = answer_start(body)
    if answer is not None:
        body = body[answer:]
        repairs.append(Repair.AGENT)
    elif THOUGHT.match(body):
        repairs.append(Repair.AGENT)  # thoughts and never an answer: nothing to show
        return ""
    if "```" in body:
        body = FENCE_LINE.sub("", body)
        repairs.append(Repair.FENCE)
    body = body.strip()
    first, newline, rest = body.partition("\n")
    if newline and rest.strip() and PREAMBLE.match(first):
        body = rest.strip()
        repairs.append(Repair.PREAMBLE)
    label = LABEL.match(body)
    if label:
        body = body[label.end() :].strip()
        repairs.append(Repair.LABEL)
    return body


def parse_reply(text: str, expected: int, player_text: str = "") -> ParsedReply:
    """The narration and reworded choices in `text`, a reply to a prompt offering `expected`
    options; `player_text` is what the player typed this turn (never offered back)."""
    repairs: list[str] = []
    body = strip_scaffolding(text, repairs)
    candidates: list[str] | None = None
    from_json = _json_reply(body) if body.startswith("{") else None
    if from_json is not None:
        repairs.append(Repair.JSON)
        narrative, candidates = from_json
    elif body.startswith("{"):
        repairs.append(Repair.JSON)  # an object cut short or unreadable: scaffolding only
        narrative = ""
    elif MARKER in body:
        narrative, tail = body.split(MARKER, 1)
        candidates = _list_items(tail)
    else:
        split = _split_trailing_list(body)
        if split is not None:
            repairs.append(Repair.NO_SEPARATOR)
            narrative, tail = split
            candidates = _list_items(tail)
        else:
            narrative = body
    narrative = narrative.strip()
    unquoted = _unquoted(narrative)
    if unquoted is not None:
        narrative = unquoted
        repairs.append(Repair.QUOTED)
    if not narrative:
        repairs.append(Repair.EMPTY)
    choices = _choices(candidates, expected, player_text, repairs)
    return ParsedReply(narrative, choices, tuple(repairs))
