"""The README keeps its promises: the two commands first, CI runs the test command, every
setting documented."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert [line.split()[0] for line in block] == ["./scripts/dev", "./scripts/test"]
    for command in ("scripts/dev", "scripts/test"):
        assert (ROOT / command).stat().st_mode & 0o111


def test_ci_runs_the_readme_test_command() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert commands == ["exec ./scripts/test"]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in readme]
    assert missing == []
