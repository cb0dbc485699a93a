"""The worker's limit on open files, raised as it starts.

Every flow-step thread keeps an event loop of its own (see `shared.game.flow`), three file
descriptors each: at the default WORKER_STEP_THREADS=256 that alone is about 770, and with a
thread pool's LLM connections and the store's and broker's a process can pass the 1,024 many
systems and container runtimes set as the soft limit. A step thread out of descriptors fails
every turn it runs ("Too many open files"). The parent raises its soft limit to the hard one
before the pool starts (its processes inherit it) and warns when even that looks short; the
hard limit is the operator's to set.
"""

from __future__ import annotations

import logging

__all__ = ["FILES_PER_STEP_THREAD", "allow_open_files", "raise_open_files_limit"]

logger = logging.getLogger(__name__)

# A step thread's loop (three) and its share of LLM connections; and the rest of a process
# (store and broker connections, metrics, logs).
FILES_PER_STEP_THREAD = 5
_FILES_BESIDES = 256
# Linux's fs.nr_open default: the most a soft limit may be without raising that too.
_UNCAPPED_SOFT_LIMIT = 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit; returns (soft, hard)
    as they now are."""
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


def allow_open_files(step_threads: int) -> None:
    """In the worker's parent, before the pool starts."""
    soft, _ = raise_open_files_limit()
    wanted = step_threads * FILES_PER_STEP_THREAD + _FILES_BESIDES
    if soft < wanted:
        logger.warning(
            "open files limited to %d; a pool process keeping WORKER_STEP_THREADS=%d turns in "
            "flight (-P threads) may need about %d: raise the hard limit (ulimit -n, or the "
            "container's nofile ulimit) or lower the setting",
            soft,
            step_threads,
            wanted,
        )
