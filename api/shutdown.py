"""Whether the server running this gateway has begun to stop.

On SIGTERM uvicorn stops accepting connections and waits for the requests in progress before
it exits. A long poll (`GET /turns/{id}?wait=`) would hold it there for up to LONG_POLL_MAX
seconds, past the grace a container runtime gives a stopping process (Docker's is 10 s), and
the players waiting would lose their answer to a SIGKILL. Long polls ask this between two
reads of the event stream and answer at once with the turn's status as it stands.

uvicorn keeps its flag on the `Server` whose bound method handles SIGTERM; there is no public
way to ask for it. sse-starlette, which ends event streams on shutdown, finds it the same way.
"""

from __future__ import annotations

import signal

__all__ = ["server_stopping"]


def server_stopping() -> bool:
    """True once the uvicorn server of this process has been told to exit; False under any
    other server, or none (in-process tests), where nothing stops a long poll early."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return getattr(server, "should_exit", False) is True
