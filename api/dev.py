"""Dev mode in one process: `python -m api.dev` serves the gateway with the memory backend and
eager Celery (the turn runs in a thread of this process), so no Redis or worker is needed."""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn

__all__ = ["main"]

_HOW_TO_PLAY = """
Pocket Portals dev server on http://{host}:{port}  (memory backend, eager Celery)

Play in a browser:    http://{host}:{port}/
Play in a terminal:   .venv/bin/portals play --url http://{host}:{port}
Or with curl:
  curl -s -X POST http://{host}:{port}/sessions            # note session_id and player_token
  curl -s -X POST http://{host}:{port}/sessions/$SID/turns \\
       -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
       -d '{{"choice_index": 1}}'
  curl -s "http://{host}:{port}/sessions/$SID/turns/$TURN?wait=10" -H "Authorization: Bearer $TOKEN"
API docs: http://{host}:{port}/docs      Sessions live in this process only.
"""


def _port_taken(host: str, port: int) -> str | None:
    """Why the server could not listen there, or None. Checked before the banner, so a busy
    port is one clear line rather than a banner followed by uvicorn's bind error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        # The entry point reads its own variable; the service's settings never do.
        default=int(os.environ.get("PORTALS_HTTP_PORT", "8000")),
        help="the port to serve on (default: PORTALS_HTTP_PORT, or 8000)",
    )
    args = parser.parse_args(argv)
    taken = _port_taken(args.host, args.port)
    if taken is not None:
        sys.stderr.write(
            f"Cannot serve on {args.host}:{args.port}: {taken} (is another server running "
            f"there?). Choose another port: ./scripts/dev --port {args.port + 1}, or "
            f"PORTALS_HTTP_PORT={args.port + 1} ./scripts/dev\n"
        )
        raise SystemExit(1)
    # Dev mode is this entry point's whole purpose; an explicit environment still wins.
    os.environ.setdefault("SESSION_BACKEND", "memory")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    os.environ.setdefault("LOG_FORMAT", "text")
    sys.stderr.write(_HOW_TO_PLAY.format(host=args.host, port=args.port))
    uvicorn.run("api.main:app", host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
