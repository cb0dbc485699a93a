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

__all__ = ["EventLoopKind", "new_event_loop"]

EventLoopKind = Literal["auto", "uvloop", "asyncio"]


def new_event_loop(kind: EventLoopKind) -> asyncio.AbstractEventLoop:
    """A new loop of `kind`: `auto` is uvloop if it can be imported, else asyncio's."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise ConfigurationError(
                "WORKER_EVENT_LOOP=uvloop, but uvloop is not installed "
                "(pip install uvloop; it does not support Windows)"
            ) from None
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
