"""Directories a process is told to use by a setting: made when missing, or refused at start.

A container image, a fresh host or a typo can point a setting at a directory nobody created.
Finding out on the first write is too late: prometheus-client fails while a metric is defined
(at import), and a heartbeat that is never written makes a healthy worker look dead. So each
process makes its directories before it starts work, and when it cannot, it stops with a
`ConfigurationError` that names the setting, the path and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.errors import ConfigurationError

__all__ = ["ensure_directory", "ensure_file_writable"]


def ensure_directory(path: Path, setting: str) -> Path:
    """`path` as an existing directory this process can write into, made (with its
    parents) when missing."""
    problem = _directory_problem(path)
    if problem is not None:
        raise _refusal(setting, path, problem)
    return path


def ensure_file_writable(path: Path, setting: str) -> Path:
    """`path` as a file this process can create or write (its directory made when missing).
    The file itself is left as it is: its age may mean something (a heartbeat)."""
    problem = _directory_problem(path.parent)
    if problem is not None:
        raise _refusal(setting, path, f"its directory {path.parent}: {problem}")
    if path.is_dir():
        raise _refusal(setting, path, "it is a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise _refusal(setting, path, f"user id {os.getuid()} may not write it")
    return path


def _directory_problem(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "it exists and is not a directory"
    except OSError as exc:
        return f"it cannot be created: {exc.strerror}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"user id {os.getuid()} may not write into it"
    return None


def _refusal(setting: str, path: Path, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"{setting}={path}: {reason}. Create it writable for this process's user, or set "
        f"{setting} to a path that is."
    )
