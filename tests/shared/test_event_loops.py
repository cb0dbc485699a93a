"""`new_event_loop`: the kind of loop a worker's runtime and step threads run on."""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import Iterator

import pytest
import uvloop

from shared.errors import ConfigurationError
from shared.event_loops import (
    EventLoopKind,
    check_event_loop,
    new_event_loop,
    raise_open_files_limit,
)


@pytest.mark.parametrize(("kind", "uv"), [("auto", True), ("uvloop", True), ("asyncio", False)])
def test_each_kind_makes_a_working_loop_of_its_own(kind: EventLoopKind, uv: bool) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, uvloop.Loop) is uv
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    loop = new_event_loop("auto")
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    with pytest.raises(ConfigurationError, match="WORKER_EVENT_LOOP"):
        new_event_loop("uvloop")
    with pytest.raises(ConfigurationError, match="WORKER_EVENT_LOOP"):
        check_event_loop("uvloop")
    check_event_loop("auto")  # falls back: nothing to refuse
    check_event_loop("asyncio")


@pytest.fixture
def open_files_limit() -> Iterator[tuple[int, int]]:
    """This process's limit, put back afterwards (a soft limit may go back up to the hard)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limit
    resource.setrlimit(resource.RLIMIT_NOFILE, limit)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(
    open_files_limit: tuple[int, int],
) -> None:
    _, hard = open_files_limit
    lowered = 512 if hard == resource.RLIM_INFINITY else min(512, hard - 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    soft, _ = raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    assert soft == hard or (hard == resource.RLIM_INFINITY and soft > lowered)
