"""Directories named by settings are made when missing, or refused with the setting's name;
a service that cannot use one stops at start instead of failing later."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.directories import ensure_directory, ensure_file_writable
from shared.errors import ConfigurationError
from tests.support.processes import run_python


def test_a_missing_directory_is_made_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "metrics"
    assert ensure_directory(target, "PROMETHEUS_MULTIPROC_DIR") == target
    assert target.is_dir()
    # Again: nothing to do, nothing refused.
    ensure_directory(target, "PROMETHEUS_MULTIPROC_DIR")


def test_a_file_in_the_way_is_refused_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "metrics"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match=r"PROMETHEUS_MULTIPROC_DIR=.*not a directory"):
        ensure_directory(blocker, "PROMETHEUS_MULTIPROC_DIR")
    with pytest.raises(ConfigurationError, match=r"CREWAI_STORAGE_DIR=.*cannot be created"):
        ensure_directory(blocker / "inside", "CREWAI_STORAGE_DIR")


def test_an_unwritable_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every directory is writable, so the permission check is what is replaced.
    monkeypatch.setattr(os, "access", lambda *_: False)
    with pytest.raises(ConfigurationError, match="CREWAI_STORAGE_DIR=.*may not write into it"):
        ensure_directory(tmp_path, "CREWAI_STORAGE_DIR")


def test_a_file_setting_makes_its_directory_and_leaves_the_file_alone(tmp_path: Path) -> None:
    heartbeat = tmp_path / "run" / "worker.heartbeat"
    ensure_file_writable(heartbeat, "WORKER_HEARTBEAT_FILE")
    assert heartbeat.parent.is_dir() and not heartbeat.exists()
    with pytest.raises(ConfigurationError, match="WORKER_HEARTBEAT_FILE=.*is a directory"):
        ensure_file_writable(heartbeat.parent, "WORKER_HEARTBEAT_FILE")


def _blocked(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return blocker / "inside"


@pytest.mark.parametrize(
    ("variable", "command"),
    [
        ("PROMETHEUS_MULTIPROC_DIR", ["-m", "celery", "-A", "worker", "worker", "-P", "solo"]),
        ("WORKER_HEARTBEAT_FILE", ["-m", "celery", "-A", "worker", "worker", "-P", "solo"]),
        ("CREWAI_STORAGE_DIR", ["-m", "celery", "-A", "worker", "worker", "-P", "solo"]),
        ("PROMETHEUS_MULTIPROC_DIR", ["-c", "import api.main"]),
        ("CREWAI_STORAGE_DIR", ["-c", "import shared.game.flow"]),
    ],
)
def test_a_process_refuses_to_start_naming_the_setting(
    tmp_path: Path, variable: str, command: list[str]
) -> None:
    env = {
        "SESSION_BACKEND": "redis",
        # Nothing listens there: each refusal comes before any connection.
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "CREWAI_STORAGE_DIR": str(tmp_path / "crewai"),
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        "HOME": str(tmp_path),
        variable: str(_blocked(tmp_path)),
    }
    done = run_python(command, env)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{variable}={_blocked(tmp_path)}" in output, output[-3000:]
    assert "Traceback" not in output or "ConfigurationError" in output
