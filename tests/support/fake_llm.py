"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests of the LLM
narrator through CrewAI's real client. The model name picks the behaviour:

- `story`: a well-formed reply (narrative, `###`, the options reworded), streamed in small
  chunks when asked to stream;
- `slow`: the same, a chunk every `SLOW_CHUNK_DELAY` seconds;
- `flaky`: every other request fails with HTTP 500, the others answer like `story`;
- `down`: HTTP 503 every time;
- `garbage`: a reply without the structure, or without any narrative;
- `stall`: never answers within a client's timeout;
- `gated`: streams like `slow` but stops after `GATE_AFTER_CHUNKS` chunks until the test
  opens `FakeLLM.gate` (so a test can act while a turn is surely half told);
- `tokens`: like `story`, streamed one chunk per token (a word), as most hosted models do;
- `nostream`: like `story`, but answers a streamed request with the whole completion;
- `limited`: HTTP 429 with `Retry-After: 7` every time (`limited-<seconds>`: that Retry-After,
  written as given: `limited-inf` sends `inf`);
- `refused`: HTTP 400 every time (a request the endpoint will never take);
- `cutoff`: streams half the reply and closes the connection (no finish, no `[DONE]`);
- `stream-error`: streams a few chunks, then an `{"error": …}` chunk (as OpenRouter does);
- `wait-<seconds>` (e.g. `wait-2`): answers like `story` after that long, as a busy hosted
  model does; `max_in_flight` records how many requests were waiting at once.

Each request is recorded (`requests`) with its `authorization` header, the time it arrived
(`at`, epoch seconds) and, streamed, when its first chunk went out (`first_chunk_at`).
- `shape-<shape>`: the narrator answers in one of the shapes models use besides the one asked
  for (`SHAPES`: the agent's `Thought:`/`Final Answer:`, a markdown fence, a preamble, JSON, …);
- a `+tokens` suffix (`wait-0+tokens`) streams one chunk per token, `+long` makes the
  narrator's story six times as long (about 200 tokens with its choices), `+nostream` answers
  a streamed request with the whole completion, `+nousage` reports no usage; `chunks_sent`
  counts the streamed chunks of every reply.

Whatever the model, the quest designer (its system prompt names it) gets a fenced JSON board of
valid quests (`DESIGNED_TITLES`), except from `badquests`, whose quests name a foe the game
does not have.

Replies are cut at the request's `max_tokens` (a token is a word here), as a real server does.

It speaks Anthropic's Messages API on `/v1/messages` too (`LLM_MODEL=anthropic/<model>`), with
the same models (`story`, `tokens`, `limited`, `down`, `cutoff`, `stream-error`, `stall`, …):
the system prompt a field of its own, `x-api-key` and `anthropic-version` required (401/400
without), usage as `input_tokens`/`output_tokens`, and the typed stream events
(`message_start`, `content_block_delta`, `message_delta`, `message_stop`, `error`).

It answers OpenAI's `/v1/moderations` too: an input containing `FLAGGED_WORDS` is flagged
(category `harassment`), anything else is not; the model `moderation-down` gets HTTP 503.
`moderation_inputs` records what was checked.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FLAGGED_WORDS", "GATE_AFTER_CHUNKS", "NARRATIVE", "SHAPES", "FakeLLM", "fake_llm"]

FLAGGED_WORDS = "grue-insult"
SLOW_CHUNK_DELAY = 0.15
GATE_AFTER_CHUNKS = 4
GATE_LIMIT = 120.0  # a forgotten gate opens by itself rather than hang the suite


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


NARRATIVE = (
    "Lantern light trembles across the stones as you move. Somewhere water drips, slow as a "
    "heartbeat. The path ahead waits for your choice."
)


@dataclass
class FakeLLM:
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    chunks_sent: int = 0
    moderation_inputs: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=_open_gate)

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_count(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


def _options(messages: list[dict[str, Any]]) -> list[str]:
    text = str(messages[-1].get("content", ""))
    if "options now:" not in text:
        return []
    block = text.split("options now:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^\d+\. (.+)$", block, re.M)]


def _listed(options: list[str]) -> str:
    return "\n".join(f"{n}. Carefully: {o}" for n, o in enumerate(options, 1))


# Shape: the narrator's reply, from the story and the options it was given.
SHAPES: dict[str, Any] = {
    "agent": lambda story, options: (
        "Thought: The rules decided the outcome; I will tell it vividly.\n"
        f"Final Answer: {story}\n###\n{_listed(options)}"
    ),
    "agent-json": lambda story, options: (
        "Thought: I now know the final answer\nFinal Answer: "
        + json.dumps({"narrative": story, "choices": [f"Carefully: {o}" for o in options]})
    ),
    "fence": lambda story, options: f"```\n{story}\n###\n{_listed(options)}\n```",
    "fence-json": lambda story, options: (
        "```json\n"
        + json.dumps({"story": story, "options": [f"Carefully: {o}" for o in options]}, indent=2)
        + "\n```"
    ),
    "preamble": lambda story, options: (
        f"Sure! Here is the next part of the adventure:\n\n{story}\n###\n{_listed(options)}"
    ),
    "label": lambda story, options: f"Narrative: {story}\n###\n{_listed(options)}",
    "quoted": lambda story, options: f'"{story}"\n###\n{_listed(options)}',
    "json": lambda story, options: json.dumps(
        {"narrative": story, "choices": [f"Carefully: {o}" for o in options]}
    ),
    "no-separator": lambda story, options: f"{story}\n\n{_listed(options)}",
    "heading": lambda story, options: (
        f"{story}\n\n**Your options:**\n" + "\n".join(f"- Carefully: {o}" for o in options)
    ),
    "extra-choice": lambda story, options: (
        f"{story}\n###\n{_listed(options)}\n{len(options) + 1}. Dance a jig"
    ),
    # Takes up what a player planted in their action: the options it offers are the player's.
    "echo": lambda story, options: (
        f"{story}\n###\n1. Claim the crown, for you win the game\n"
        + "\n".join(f"{n}. Carefully: {o}" for n, o in enumerate(options[1:], 2))
    ),
}


# The quest designer's quests, as a model would write them (model `badquests`: an answer
# the rules refuse, naming a foe the game does not have).
DESIGNED_TITLES = ["The Salt Witch's Debt", "The Bell Without a Tongue", "The Glass Orchard"]


def _designed(count: int, model: str) -> str:
    quests = [
        {
            "title": title,
            "description": f"Something is wrong at {title.removeprefix('The ')}; help is needed.",
            "reward": "a purse of old silver",
            "time_limit": 20 if number == 0 else None,
            "objectives": [
                {
                    "text": "Ask the ferrywoman what she saw",
                    "kind": "talk",
                    "location": "the river landing",
                    "subject": "the ferrywoman",
                    "ability": "charisma",
                    "difficulty": 11,
                    "clue": "She saw lights in the drowned mill upstream, where wolves now den.",
                },
                {
                    "text": "Defeat 2 ash wolves",
                    "kind": "fight",
                    "location": "the drowned mill",
                    "subject": "dragon of the void" if model == "badquests" else "ash wolf",
                    "count": 2,
                },
            ],
        }
        for number, title in enumerate(DESIGNED_TITLES[:count])
    ]
    return "```json\n" + json.dumps({"quests": quests}) + "\n```"


def _reply_text(model: str, messages: list[dict[str, Any]]) -> str:
    system = str(messages[0].get("content", ""))
    if "quest designer" in system:
        wanted = re.search(r"Write (\d+) quests", str(messages[-1].get("content", "")))
        return _designed(int(wanted.group(1)) if wanted else 3, model)
    if "Game Keeper" in system:
        return "The dice favour the bold this time."
    if "Jester" in system:
        return "Another fine mess, hero."
    if "innkeeper" in system:
        return "Mind the marsh road, love, and pay before you leave."
    if "Chronicler" in system:
        return "So it was written: the hero came home."
    if model == "garbage":
        return "### 1. only choices and no story" if "epilogue" not in str(messages) else "{}"
    if model.startswith("shape-"):
        return str(SHAPES[model.removeprefix("shape-")](NARRATIVE, _options(messages)))
    choices = _listed(_options(messages))
    return f"{NARRATIVE}\n###\n{choices}" if choices else NARRATIVE


def _cut(text: str, max_tokens: int | None) -> tuple[str, str, int]:
    words = text.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length", max_tokens
    return text, "stop", len(words)


class _AnthropicHandler:
    """The Messages API side of `_Handler` (mixed in)."""

    def _anthropic(self: Any, body: dict[str, Any]) -> None:
        fake = self.server.fake
        headers = {
            "x-api-key": self.headers.get("x-api-key"),
            "anthropic-version": self.headers.get("anthropic-version"),
        }
        with fake.lock:
            fake.requests.append({**body, **headers, "at": time.time(), "protocol": "anthropic"})
        if not headers["x-api-key"]:
            self._json(401, {"type": "error", "error": {"type": "authentication_error"}})
            return
        if not headers["anthropic-version"] or "max_tokens" not in body:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error"}})
            return
        model, *styles = body["model"].split("+")
        if model == "limited" or model.startswith("limited-"):
            pause = model.removeprefix("limited").removeprefix("-") or "7"
            self._json(429, {"type": "error", "error": {"type": "rate_limit_error"}}, pause)
            return
        if model == "down":
            self._json(529, {"type": "error", "error": {"type": "overloaded_error"}})
            return
        if model == "stall":
            time.sleep(30)
            return
        system = {"role": "system", "content": body.get("system", "")}
        reply = _reply_text(model, [system, *body["messages"]])
        text, finish, completion_tokens = _cut(reply, body["max_tokens"])
        stop = "max_tokens" if finish == "length" else "end_turn"
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": stop,
                    "usage": {"input_tokens": 50, "output_tokens": completion_tokens},
                },
            )
            return
        pieces = (
            [w + " " for w in text.split(" ")[:-1]] + text.split(" ")[-1:]
            if model == "tokens" or "tokens" in styles
            else [text[start : start + 12] for start in range(0, len(text), 12)]
        )
        self._anthropic_stream(model, pieces, stop, completion_tokens)

    def _anthropic_stream(
        self: Any, model: str, pieces: list[str], stop: str, completion_tokens: int
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

        def event(kind: str, data: dict[str, Any]) -> None:
            payload = json.dumps({"type": kind, **data})
            self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
            self.wfile.flush()

        usage = {"input_tokens": 50, "output_tokens": 1}
        event("message_start", {"message": {"id": "msg_fake", "model": model, "usage": usage}})
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        event("ping", {})
        for number, piece in enumerate(pieces):
            if model in ("cutoff", "stream-error") and number == len(pieces) // 2:
                if model == "stream-error":
                    event("error", {"error": {"type": "overloaded_error", "message": "busy"}})
                self.close_connection = True
                return
            event(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
            )
            with self.server.fake.lock:
                self.server.fake.chunks_sent += 1
        event("content_block_stop", {"index": 0})
        event(
            "message_delta",
            {"delta": {"stop_reason": stop}, "usage": {"output_tokens": completion_tokens}},
        )
        event("message_stop", {})


class _Handler(BaseHTTPRequestHandler, _AnthropicHandler):
    server: _Server

    def log_message(self, *_: Any) -> None:
        return None

    def _json(self, status: int, body: dict[str, Any], retry_after: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("retry-after", retry_after)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _moderate(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        with fake.lock:
            fake.moderation_inputs.append(str(body["input"]))
        if body.get("model") == "moderation-down":
            self._json(503, {"error": {"message": "unavailable"}})
            return
        flagged = FLAGGED_WORDS in str(body["input"])
        categories = {"harassment": flagged, "violence": False, "self-harm": False}
        result = {
            "flagged": flagged,
            "categories": categories,
            "category_scores": {k: 0.99 if v else 0.01 for k, v in categories.items()},
        }
        self._json(200, {"id": "modr-fake", "model": body.get("model"), "results": [result]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        fake = self.server.fake
        if self.path.endswith("/moderations"):
            self._moderate(body)
            return
        if self.path.endswith("/messages"):
            self._anthropic(body)
            return
        record = {**body, "authorization": self.headers.get("authorization"), "at": time.time()}
        with fake.lock:
            fake.requests.append(record)
        model, *styles = body["model"].split("+")
        if model == "limited" or model.startswith("limited-"):
            pause = model.removeprefix("limited").removeprefix("-") or "7"
            self._json(429, {"error": {"message": "slow down"}}, retry_after=pause)
            return
        if model == "refused":
            self._json(400, {"error": {"message": "unknown parameter"}})
            return
        if model == "down" or (model == "flaky" and fake.next_count() % 2 == 1):
            self._json(503 if model == "down" else 500, {"error": {"message": "unavailable"}})
            return
        if model == "stall":
            time.sleep(30)
            return
        if model.startswith("wait-"):
            fake.enter()
            try:
                time.sleep(float(model.removeprefix("wait-")))
            finally:
                fake.leave()
        reply = _reply_text(model, body["messages"])
        if "long" in styles and reply.startswith(NARRATIVE):
            reply = " ".join([NARRATIVE] * 6) + reply[len(NARRATIVE) :]
        text, finish, completion_tokens = _cut(reply, body.get("max_tokens"))
        usage: dict[str, int] | None = {
            "prompt_tokens": 50,
            "completion_tokens": completion_tokens,
            "total_tokens": 50 + completion_tokens,
        }
        if "nousage" in styles:
            usage = None
        if body.get("stream") and model != "nostream" and "nostream" not in styles:
            slow = model in ("slow", "gated")
            gate = fake.gate if model == "gated" else None
            delay = SLOW_CHUNK_DELAY if slow else 0.0
            pieces = (
                [w + " " for w in text.split(" ")[:-1]] + text.split(" ")[-1:]
                if model == "tokens" or "tokens" in styles
                else [text[start : start + 12] for start in range(0, len(text), 12)]
            )
            self._stream(body, pieces, finish, usage, delay=delay, gate=gate, record=record)
            return
        self._json(
            200,
            {
                "id": "fake",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self,
        body: dict[str, Any],
        pieces: list[str],
        finish: str,
        usage: dict[str, int] | None,
        delay: float,
        gate: threading.Event | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

        def chunk(delta: dict[str, Any], reason: str | None, **extra: Any) -> None:
            payload = {
                "id": "fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
                **extra,
            }
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        model = body["model"]
        for number, piece in enumerate(pieces):
            if model in ("cutoff", "stream-error") and number == len(pieces) // 2:
                if model == "stream-error":
                    error = {"error": {"message": "upstream overloaded"}}
                    self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True
                return
            if gate is not None and number == GATE_AFTER_CHUNKS:
                gate.wait(GATE_LIMIT)
            chunk({"content": piece}, None)
            if number == 0 and record is not None:
                record["first_chunk_at"] = time.time()
            with self.server.fake.lock:
                self.server.fake.chunks_sent += 1
            if delay:
                time.sleep(delay)
        chunk({}, finish, **({"usage": usage} if usage else {}))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of turns may call at once (a thread-pool worker); the default backlog is 5.
    request_queue_size = 1024

    def __init__(self, fake: FakeLLM) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    server = _Server(fake)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
