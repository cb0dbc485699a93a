"""`portals sessions …`, `portals migrate` and `portals queue stats`: the operator commands.

Exit codes: 0 done; 1 the store or broker could not be reached, or a line could not be read;
2 wrong usage (argparse); 3 nothing to act on (no such session) or, for `import`, lines that
were kept because the store holds the same or a newer version of the session.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO, Any

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from shared.admin import SessionStore, connect
from shared.backends.codec import Codec
from shared.errors import PortalsError
from shared.ids import is_session_id
from shared.redis_urls import shown_url
from shared.settings import Settings, get_settings

__all__ = ["add_admin_commands", "run_admin"]

OK, UNAVAILABLE, NOTHING = 0, 1, 3


class Progress:
    """A progress bar on stderr (`[#####-----]  50% 500/1000 copied, 812/s`), redrawn at most
    ten times a second, only on a terminal; without a known total, the count and the rate."""

    WIDTH = 30

    def __init__(self, what: str, total: int | None = None, *, out: IO[str] | None = None) -> None:
        self.out = out or sys.stderr
        self.what, self.total, self.done = what, total, 0
        self.enabled = out is not None or sys.stderr.isatty()
        self._started = self._drawn = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._drawn > 0.1:
            self._drawn = now
            self._draw(now)

    def line(self, now: float) -> str:
        rate = self.done / max(now - self._started, 1e-9)
        counted = f"{self.done} {self.what}, {rate:.0f}/s"
        if not self.total:
            return counted
        share = min(self.done / self.total, 1.0)
        filled = round(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"[{bar}] {share:4.0%} {self.done}/{self.total} {self.what}, {rate:.0f}/s"

    def _draw(self, now: float) -> None:
        self.out.write("\r" + self.line(now))
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.out.write("\n")


def _total(store: SessionStore) -> int | None:
    """How many sessions a long run will go through, for its progress bar: one SCAN pass
    more, made only when there is a terminal to show the bar on."""
    return store.count() if sys.stderr.isatty() else None


def add_admin_commands(commands: Any) -> None:
    sessions = commands.add_parser("sessions", help="list, show, delete, export, import sessions")
    sessions.add_argument("--redis-url", help="the session store (default: REDIS_URL)")
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="session ids, a page at a time (SCAN, never KEYS)")
    listing.add_argument("--cursor", type=int, default=0, help="from a previous page's cursor")
    listing.add_argument("--limit", type=int, default=100, help="about this many per page")
    listing.add_argument("--count", action="store_true", help="only count all sessions")
    for name, text in (("show", "one session as JSON"), ("delete", "remove every key of one")):
        action = actions.add_parser(name, help=text)
        action.add_argument("session_id")
    export = actions.add_parser("export", help="every session as JSON lines, with its TTL")
    export.add_argument("--output", "-o", help="a file (default: standard output)")
    importing = actions.add_parser("import", help="sessions from exported JSON lines")
    importing.add_argument("--input", "-i", help="a file (default: standard input)")
    importing.add_argument(
        "--overwrite", action="store_true", help="replace sessions the store has newer versions of"
    )
    migrate = commands.add_parser("migrate", help="copy every session from one Redis to another")
    migrate.add_argument("--from", dest="source", required=True, help="Redis URL to read")
    migrate.add_argument("--to", dest="target", required=True, help="Redis URL to write")
    migrate.add_argument("--overwrite", action="store_true")
    queue = commands.add_parser("queue", help="the broker queue")
    queue.add_argument("action", choices=["stats"])


def run_admin(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    try:
        if args.command == "migrate":
            return _migrate(args, settings)
        if args.command == "queue":
            return _queue_stats(settings)
        if args.redis_url:
            _tell_store(args.redis_url, "from --redis-url")
        else:
            _tell_store(settings.redis_url, _origin(settings, "redis_url", "REDIS_URL"))
        store = _store(args.redis_url or settings.redis_url, settings)
        return _sessions(args, store)
    except RedisError as exc:
        sys.stderr.write(f"portals: the store did not answer: {type(exc).__name__}: {exc}\n")
        return UNAVAILABLE
    except (OSError, KombuOperationalError) as exc:
        sys.stderr.write(f"portals: the broker did not answer: {type(exc).__name__}: {exc}\n")
        return UNAVAILABLE
    except KeyError as exc:
        sys.stderr.write(f"portals: an input line lacks the field {exc}\n")
        return UNAVAILABLE
    except (ValueError, PortalsError) as exc:  # unreadable input; a state of a newer schema
        sys.stderr.write(f"portals: {exc}\n")
        return UNAVAILABLE


def _origin(settings: Settings, field: str, variable: str) -> str:
    if field in settings.model_fields_set:
        return f"from {variable}"
    return f"{variable} is not set: the default"


def _tell_store(url: str, origin: str, what: str = "session store") -> None:
    """Every command says which server it reads: a forgotten REDIS_URL must not quietly
    mean some other Redis on localhost."""
    sys.stderr.write(f"portals: {what} {shown_url(url)} ({origin})\n")


def _amqp_queue(settings: Settings) -> dict[str, Any]:
    """RabbitMQ's own count of ready messages and consumers (a passive declare); how many
    are delivered but unacknowledged only its management API knows."""
    from worker.application import create_celery_app

    app = create_celery_app(settings)
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=10)
            try:
                declared = connection.default_channel.queue_declare(
                    queue=settings.celery_queue, passive=True
                )
            except connection.channel_errors:
                return {"waiting_tasks": 0, "consumers": 0, "unacknowledged_tasks": None}
    finally:
        app.close()  # it opened a connection, not kombu's producer pools
    return {
        "waiting_tasks": int(declared.message_count),
        "consumers": int(declared.consumer_count),
        "unacknowledged_tasks": None,
    }


def _store(url: str, settings: Settings) -> SessionStore:
    if url.startswith("memory"):
        raise ValueError("the memory backend lives inside one process: nothing to read here")
    return SessionStore(
        connect(url),
        default_ttl_ms=settings.redis_session_ttl * 1000,
        codec=Codec.from_settings(settings),
        queue=settings.celery_queue,
    )


def _print(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")


def _sessions(args: argparse.Namespace, store: SessionStore) -> int:
    if args.action == "list":
        if args.count:
            progress = Progress("counted")
            for _ in store.ids():
                progress.step()
            progress.finish()
            _print({"sessions": progress.done})
            return OK
        ids, cursor = store.page(args.cursor, args.limit)
        for session_id in ids:
            sys.stdout.write(session_id + "\n")
        sys.stderr.write(f"next cursor: {cursor}" + (" (done)\n" if cursor == 0 else "\n"))
        return OK
    if args.action in {"show", "delete"}:
        if not is_session_id(args.session_id):
            sys.stderr.write("portals: not a session id\n")
            return NOTHING
        if args.action == "delete":
            return OK if store.delete(args.session_id) else NOTHING
        shown = store.show(args.session_id)
        if shown is None:
            sys.stderr.write("portals: no such session\n")
            return NOTHING
        _print(shown)
        return OK
    if args.action == "export":
        with ExitStack() as files:
            out = files.enter_context(open(args.output, "w")) if args.output else sys.stdout
            _export(store, out)
        return OK
    with ExitStack() as files:
        source = files.enter_context(open(args.input)) if args.input else sys.stdin
        # Counted first only from a regular file: reading a pipe would use its data up.
        countable = args.input and os.path.isfile(args.input) and sys.stderr.isatty()
        total = _line_count(args.input) if countable else None
        outcome = store.import_lines(
            _read_lines(source, Progress("imported", total)),
            overwrite=args.overwrite,
            on_error=_report_line,
        )
    _print({"written": outcome.written, "kept_newer": outcome.kept_newer, "failed": outcome.failed})
    if outcome.failed:
        return UNAVAILABLE
    return NOTHING if outcome.kept_newer else OK


def _report_line(number: int, why: str) -> None:
    sys.stderr.write(f"portals: line {number}: {why}\n")


def _line_count(path: str) -> int:
    with open(path, "rb") as source:
        return sum(1 for line in source if line.strip())


def _export(store: SessionStore, out: IO[str]) -> int:
    progress = Progress("exported", _total(store))
    for session_id in store.ids():
        line = store.export(session_id)
        if line is not None:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            progress.step()
    progress.finish()
    return progress.done


def _read_lines(source: IO[str], progress: Progress) -> Iterator[tuple[int, str]]:
    for number, text in enumerate(source, start=1):
        if not text.strip():
            continue
        yield number, text
        progress.step()
    progress.finish()


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    source, target = _store(args.source, settings), _store(args.target, settings)
    progress = Progress("copied", _total(source))
    written = kept = 0
    for session_id in source.ids():
        line = source.export(session_id)
        if line is None:
            continue
        if target.import_line(line, overwrite=args.overwrite):
            written += 1
        else:
            kept += 1
        progress.step()
    progress.finish()
    _print({"written": written, "kept_newer": kept})
    return NOTHING if kept else OK


def _queue_stats(settings: Settings) -> int:
    _tell_store(settings.redis_url, _origin(settings, "redis_url", "REDIS_URL"))
    if settings.celery_broker_url:
        _tell_store(settings.broker_url, "from CELERY_BROKER_URL", "broker")
    else:
        _tell_store(settings.broker_url, "CELERY_BROKER_URL is not set: REDIS_URL's", "broker")
    store = _store(settings.redis_url, settings)
    queue = settings.celery_queue
    stats: dict[str, Any] = {"queue": queue}
    if settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        stats |= _amqp_queue(settings)
    else:
        broker = connect(settings.broker_url)
        # kombu's Redis transport keeps a list per priority step: the queue's own name for
        # step 0, the name and a separator and the step for the others.
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        lists = [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]
        stats["waiting_tasks"] = sum(int(broker.llen(name)) for name in lists)
        # kombu's Redis transport keeps delivered, unacknowledged tasks in this hash.
        stats["unacknowledged_tasks"] = int(broker.hlen("unacked"))
    stats["sessions_with_turns_waiting"] = store.sessions_waiting()
    _print(stats)
    return OK
