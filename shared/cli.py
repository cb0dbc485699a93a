"""`portals`: command-line tools. `portals play` is a small terminal client of the HTTP API
(`shared.play`); the operator commands (`sessions`, `migrate`, `queue`) are in
`shared.admin_commands`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.admin_commands import add_admin_commands, run_admin
from shared.ids import is_session_id
from shared.play import PlayError, default_state_file, play, print_story

__all__ = ["main"]


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
    state_file = default_state_file(os.environ.get("XDG_STATE_HOME"))
    play_cmd = commands.add_parser(
        "play",
        help="play in the terminal against a running gateway",
        description="Play Pocket Portals in the terminal against a running gateway "
        "(./scripts/dev starts one). Type a choice's number or describe what you do; "
        "'quit' stops, and --resume carries on later.",
    )
    play_cmd.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the gateway's address (default: %(default)s; ignored with --resume and "
        "--story, which use the saved adventure's)",
    )
    play_cmd.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the new adventure's seed: the same seed and "
        "actions tell the same story (default: a random one)",
    )
    what = play_cmd.add_mutually_exclusive_group()
    what.add_argument(
        "--resume",
        action="store_true",
        help="continue the saved adventure instead of starting a new one",
    )
    what.add_argument(
        "--story", action="store_true", help="print the saved adventure as Markdown and exit"
    )
    play_cmd.add_argument(
        "--state-file",
        type=Path,
        default=state_file,
        help="where the adventure's id and token are kept (default: %(default)s, under "
        "$XDG_STATE_HOME when it is set)",
    )
    add_admin_commands(commands)
    args = parser.parse_args(_session_ids_as_operands(sys.argv[1:] if argv is None else argv))
    if args.command == "play":
        try:
            if args.story:
                return print_story(args.state_file)
            return play(args.url, args.seed, resume=args.resume, state_file=args.state_file)
        except PlayError as problem:
            sys.stderr.write(f"portals play: {problem}\n")
            return 2
        except KeyboardInterrupt:
            return 130
    return run_admin(args)


if __name__ == "__main__":
    sys.exit(main())
