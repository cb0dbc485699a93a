"""`portals play`: the terminal client against a real in-process gateway (dev mode), and
against no server at all."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.main import create_app
from shared.cli import main
from shared.settings import Settings
from tests.support.ports import free_port
from tests.support.server import serve


@pytest.fixture
def gateway(memory_settings: Settings) -> Iterator[str]:
    with serve(create_app(memory_settings)) as url:
        yield url


def run(
    args: list[str], typed: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    code = main(["play", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_server_is_a_sentence_with_what_to_do_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(
        ["--url", url, "--state-file", str(tmp_path / "a.json")], "", monkeypatch, capsys
    )
    assert code == 2 and out == ""
    assert err.strip() == (
        f"portals play: No Pocket Portals server answers at {url}. Start one with "
        "./scripts/dev (in the repository), or point --url at a running one."
    )
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_nothing_to_resume_is_said_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.json"
    code, _, err = run(["--resume", "--state-file", str(missing)], "", monkeypatch, capsys)
    assert code == 2 and "No adventure to resume" in err and "portals play" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, _, err = run(["--story", "--state-file", str(broken)], "", monkeypatch, capsys)
    assert code == 2 and "is not a saved adventure" in err


def test_play_quit_resume_and_print_the_story(
    gateway: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = tmp_path / "state" / "adventure.json"
    # A file left readable by others (an older copy, a careless umask) is made private.
    saved.parent.mkdir()
    saved.write_text("{}")
    saved.chmod(0o644)
    common = ["--state-file", str(saved)]
    code, out, _ = run(["--url", gateway, "--seed", "7", *common], "1\nquit\n", monkeypatch, capsys)
    assert code == 0 and "portals play --resume" in out
    assert "  1. Play Brannoc, a dwarf fighter" in out
    # Kept for this user alone.
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    # Later (another --url is ignored: the saved adventure's server is used).
    code, out, _ = run(
        ["--resume", "--url", "http://127.0.0.1:9", *common], "1\n", monkeypatch, capsys
    )
    assert code == 0
    assert out.startswith("Resuming your adventure. Where you left off:")
    assert "> Play Brannoc, a dwarf fighter" in out
    assert "You take up the quest" in out  # the turn played on resuming
    code, out, _ = run(["--story", *common], "", monkeypatch, capsys)
    assert code == 0 and out.startswith("# The tale of Brannoc\n")


def test_a_gone_adventure_says_to_start_a_new_one(
    gateway: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = tmp_path / "adventure.json"
    saved.write_text(f'{{"url": "{gateway}", "session_id": "{"A" * 24}", "token": "{"x" * 43}"}}')
    code, _, err = run(["--resume", "--state-file", str(saved)], "", monkeypatch, capsys)
    assert code == 2 and "That adventure is gone" in err


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["play", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--url", "--seed", "--resume", "--story", "--state-file"):
        assert option in text
    for words in (
        "./scripts/dev",
        "the gateway's address",
        "continue the saved adventure",
        "print the saved adventure as Markdown",
        "id and token are kept",
    ):
        assert words in text
