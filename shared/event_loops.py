"""The event loops a worker process makes: its runtime's loop and each flow-step thread's.

uvloop where it is installed (the default, `WORKER_EVENT_LOOP=auto`): a turn runs a few
hundred callbacks, tasks and socket waits through these loops, and on the stock asyncio loop
that machinery was about two fifths of a worker's CPU per offline turn (measured in-process:
7.9 ms a turn on asyncio's loop, 4.7 ms on uvloop's). `asyncio` is there for a platform
without uvloop (Windows) and to rule the loop out when chasing a bug. The gateway's loop is
uvicorn's to choose (its `--loop`, uvloop by default where installed).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from shared.errors import ConfigurationError

__all__ = ["EventLoopKind", "check_event_loop", "new_event_loop", "raise_open_files_limit"]

EventLoopKind = Literal["auto", "uvloop", "asyncio"]

# Linux's fs.nr_open default: the most a soft limit may be without raising that too.
_UNCAPPED_SOFT_LIMIT = 1 << 20


def new_event_loop(kind: EventLoopKind) -> asyncio.AbstractEventLoop:
    """A new loop of `kind`: `auto` is uvloop if it can be imported, else asyncio's."""
    if kind != "asyncio":
        check_event_loop(kind)
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def check_event_loop(kind: EventLoopKind) -> None:
    """Refuse at start-up (`ConfigurationError`) a kind that cannot be made here, without
    making a loop: a prefork parent calls this, and its children make their own."""
    if kind != "uvloop":
        return
    try:
        import uvloop  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "WORKER_EVENT_LOOP=uvloop, but uvloop is not installed "
            "(pip install uvloop; it does not support Windows)"
        ) from None


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit; its children inherit
    it. Returns (soft, hard) as they now are.

    Every flow-step thread keeps a loop of its own, and a uvloop loop holds five descriptors
    (asyncio's, three): at the default WORKER_STEP_THREADS=256 that alone is about 1,280,
    past the 1,024 many systems and container runtimes set as the soft limit, where a step
    thread would fail every turn it ran with "Too many open files". The hard limit is the
    operator's to set."""
    import resource  # (POSIX only)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft, hard
    # An unlimited hard limit: as many as the kernel lets any process open by default.
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, _UNCAPPED_SOFT_LIMIT)
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # a kernel's fs.nr_open set below it: keep what is
            return soft, hard
        soft = wanted
    return soft, hard
