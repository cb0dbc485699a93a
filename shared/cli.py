"""`portals`: command-line tools. `portals play` is a tiny terminal client of the HTTP API;
the operator commands (`sessions`, `migrate`, `queue`) are in `shared.admin_commands`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from shared.admin_commands import add_admin_commands, run_admin
from shared.ids import is_session_id

__all__ = ["main"]


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _show_choices(choices: list[str]) -> None:
    for number, choice in enumerate(choices, start=1):
        _say(f"  {number}. {choice}")


def _turn_body(line: str, choices: list[str]) -> dict[str, Any]:
    if line.isdigit() and 1 <= int(line) <= len(choices):
        return {"choice_index": int(line)}
    return {"action": line}


def play(url: str, seed: int | None) -> int:
    with httpx.Client(base_url=url, timeout=60) as http:
        created = http.post("/sessions", json={"seed": seed} if seed is not None else None)
        created.raise_for_status()
        session = created.json()
        auth = {"Authorization": f"Bearer {session['player_token']}"}
        sid, choices = session["session_id"], session["state"]["current_choices"]
        _say(f"Session {sid}. Type a number to choose, or describe what you do; 'quit' to stop.")
        _say("Who are you? Describe your hero, or pick one:")
        _show_choices(choices)
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                return 0
            if line in {"quit", "exit"}:
                return 0
            if not line:
                continue
            accepted = http.post(
                f"/sessions/{sid}/turns", json=_turn_body(line, choices), headers=auth
            )
            if accepted.status_code != 202:
                _say(accepted.json()["error"]["message"])
                continue
            turn = http.get(
                f"/sessions/{sid}/turns/{accepted.json()['turn_id']}",
                params={"wait": 30},
                headers=auth,
            ).json()
            if turn["status"] != "completed":
                _say((turn.get("error") or {}).get("message", "The story is still being told."))
                continue
            _say("\n" + turn["result"]["narrative"] + "\n")
            choices = turn["result"]["choices"]
            if not choices:
                _say("The adventure is over. Thanks for playing!")
                return 0
            _show_choices(choices)


def _session_ids_as_operands(argv: list[str]) -> list[str]:
    """A session id may start with '-' (url-safe base64), which argparse would take for an
    option: `sessions show|delete ID` get a `--` before such an id."""
    argv = list(argv)
    for n in range(len(argv) - 1):
        if (
            argv[n] in {"show", "delete"}
            and argv[n + 1].startswith("-")
            and is_session_id(argv[n + 1])
        ):
            return [*argv[: n + 1], "--", *argv[n + 1 :]]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portals", description="Pocket Portals tools")
    commands = parser.add_subparsers(dest="command", required=True)
    play_cmd = commands.add_parser("play", help="play in the terminal against a gateway")
    play_cmd.add_argument("--url", default="http://127.0.0.1:8000")
    play_cmd.add_argument("--seed", type=int, default=None)
    add_admin_commands(commands)
    args = parser.parse_args(_session_ids_as_operands(sys.argv[1:] if argv is None else argv))
    if args.command == "play":
        return play(args.url, args.seed)
    return run_admin(args)


if __name__ == "__main__":
    sys.exit(main())
