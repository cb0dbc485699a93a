"""The worker's open-files limit, raised as it starts."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator

import pytest

from worker.open_files import FILES_PER_STEP_THREAD, allow_open_files, raise_open_files_limit


@pytest.fixture
def open_files_limit() -> Iterator[tuple[int, int]]:
    """This process's limit, put back afterwards (a soft limit may go back up to the hard)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limit
    resource.setrlimit(resource.RLIMIT_NOFILE, limit)


def test_the_soft_limit_is_raised_to_the_hard_one(open_files_limit: tuple[int, int]) -> None:
    _, hard = open_files_limit
    lowered = 512 if hard == resource.RLIM_INFINITY else min(512, hard - 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    soft, _ = raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    assert soft == hard or (hard == resource.RLIM_INFINITY and soft > lowered)


def test_a_limit_short_of_the_step_threads_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As if the hard limit were a container's common 1,024 (the real one may be unlimited).
    monkeypatch.setattr("worker.open_files.raise_open_files_limit", lambda: (1024, 1024))
    with caplog.at_level(logging.WARNING, logger="worker.open_files"):
        allow_open_files(step_threads=8)
        assert caplog.records == []
        allow_open_files(step_threads=1024 // FILES_PER_STEP_THREAD)
    assert "WORKER_STEP_THREADS" in caplog.text and "1024" in caplog.text
