"""`portals play`: a small terminal client of the HTTP API (docs/api.md).

The adventure's id and token are kept in a file under the user's state directory
(`$XDG_STATE_HOME/pocket-portals/adventure.json`, else `~/.local/state/…`), readable by the
user alone, so `portals play --resume` continues it; `portals play --story` prints it as
Markdown. A server that cannot be reached, or an adventure that is gone, is said in a sentence
with what to do, never a traceback."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["PlayError", "default_state_file", "play", "print_story"]

START_HINT = "Start one with ./scripts/dev (in the repository), or point --url at a running one."


class PlayError(Exception):
    """What went wrong, said to the player (the client exits with status 2)."""


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def default_state_file(xdg_state_home: str | None) -> Path:
    """Where the adventure is kept: under `$XDG_STATE_HOME` (the caller reads it), else
    `~/.local/state`."""
    base = Path(xdg_state_home) if xdg_state_home else Path.home() / ".local" / "state"
    return base / "pocket-portals" / "adventure.json"


@dataclass(frozen=True)
class Saved:
    url: str
    session_id: str
    token: str

    @classmethod
    def load(cls, path: Path) -> Saved:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["url"]), str(data["session_id"]), str(data["token"]))
        except FileNotFoundError:
            raise PlayError(
                f"No adventure to resume ({path} does not exist): start one with portals play."
            ) from None
        except (OSError, ValueError, KeyError, TypeError):
            raise PlayError(
                f"{path} is not a saved adventure: start one with portals play."
            ) from None

    def store(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The token is the adventure's key: readable by this user alone.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags, 0o600)
        # An older file keeps its mode when opened: made private before the token goes in.
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump({"url": self.url, "session_id": self.session_id, "token": self.token}, file)


class _Api:
    """The gateway, with its failures turned into `PlayError`s."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=70)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise PlayError(
                f"No Pocket Portals server answers at {self.url}. {START_HINT}"
            ) from None
        except httpx.TimeoutException:
            raise PlayError(
                f"The server at {self.url} did not answer in time; try again."
            ) from None
        except httpx.HTTPError as exc:
            raise PlayError(f"Talking to {self.url} failed ({exc}). {START_HINT}") from None

    def json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise PlayError(
                f"{self.url} answered HTTP {response.status_code} but is not a Pocket Portals "
                f"server. {START_HINT}"
            ) from None
        return dict(body) if isinstance(body, dict) else {}


def _message(body: dict[str, Any], fallback: str) -> str:
    error = body.get("error")
    return str(error.get("message", fallback)) if isinstance(error, dict) else fallback


def _show_choices(choices: list[str]) -> None:
    for number, choice in enumerate(choices, start=1):
        _say(f"  {number}. {choice}")


def _turn_body(line: str, choices: list[str]) -> dict[str, Any]:
    if line.isdigit() and 1 <= int(line) <= len(choices):
        return {"choice_index": int(line)}
    return {"action": line}


def _start(api: _Api, seed: int | None, state_file: Path) -> tuple[Saved, list[str]]:
    created = api.call("POST", "/sessions", json={"seed": seed} if seed is not None else None)
    body = api.json(created)
    if created.status_code != 201:
        raise PlayError(
            _message(body, f"The server refused a new adventure ({created.status_code}).")
        )
    saved = Saved(api.url, body["session_id"], body["player_token"])
    saved.store(state_file)
    _say(f"A new adventure (kept in {state_file}: continue it with portals play --resume).")
    _say("Type a number to choose, or describe what you do; 'quit' to stop.")
    _say("Who are you? Describe your hero, or pick one:")
    return saved, list(body["state"]["current_choices"])


def _resume(api: _Api, saved: Saved) -> list[str]:
    got = api.call(
        "GET", f"/sessions/{saved.session_id}", headers={"Authorization": f"Bearer {saved.token}"}
    )
    body = api.json(got)
    if got.status_code == 404:
        raise PlayError(
            "That adventure is gone (it expired or was deleted): start a new one with portals play."
        )
    if got.status_code != 200:
        raise PlayError(_message(body, f"The server refused ({got.status_code})."))
    state = body["state"]
    history = state["conversation_history"]
    _say("Resuming your adventure. Where you left off:")
    if history:
        _say(f"\n> {history[-1]['action']}\n\n{history[-1]['narrative']}\n")
    if state["adventure_completed"]:
        _say("This adventure is over; portals play --story prints it.")
    return list(state["current_choices"])


def _turn(api: _Api, saved: Saved, body: dict[str, Any]) -> dict[str, Any] | None:
    auth = {"Authorization": f"Bearer {saved.token}"}
    accepted = api.call("POST", f"/sessions/{saved.session_id}/turns", json=body, headers=auth)
    answer = api.json(accepted)
    if accepted.status_code != 202:
        _say(_message(answer, f"The turn was refused ({accepted.status_code})."))
        return None
    turn: dict[str, Any] = {}
    # The gateway holds a GET for at most 30 s: a slow LLM's turn is asked for again.
    for _ in range(4):
        got = api.call(
            "GET",
            f"/sessions/{saved.session_id}/turns/{answer['turn_id']}",
            params={"wait": 30},
            headers=auth,
        )
        turn = api.json(got)
        if turn.get("status") in ("completed", "failed"):
            break
    if turn.get("status") != "completed":
        _say(_message(turn, "The story is still being told; try again in a moment."))
        return None
    return dict(turn["result"])


def play(url: str, seed: int | None, *, resume: bool, state_file: Path) -> int:
    saved = Saved.load(state_file) if resume else None
    api = _Api(saved.url if saved else url)
    try:
        if saved is None:
            saved, choices = _start(api, seed, state_file)
        else:
            choices = _resume(api, saved)
        _show_choices(choices)
        while choices:
            try:
                line = input("> ").strip()
            except EOFError:
                return 0
            if line in {"quit", "exit"}:
                return 0
            if not line:
                continue
            result = _turn(api, saved, _turn_body(line, choices))
            if result is None:
                continue
            _say("\n" + result["narrative"] + "\n")
            choices = result["choices"]
            _show_choices(choices)
        _say("The adventure is over. Thanks for playing! (portals play --story prints it.)")
        return 0
    finally:
        api.http.close()


def print_story(state_file: Path) -> int:
    saved = Saved.load(state_file)
    api = _Api(saved.url)
    try:
        got = api.call(
            "GET",
            f"/sessions/{saved.session_id}/story",
            headers={"Authorization": f"Bearer {saved.token}"},
        )
        if got.status_code != 200:
            raise PlayError(_message(api.json(got), f"The server refused ({got.status_code})."))
        sys.stdout.write(got.text)
        return 0
    finally:
        api.http.close()
