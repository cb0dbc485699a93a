"""The player page's JavaScript unit tests (tests/web/*.test.mjs: stream resume, key
handling, the panels, the dice, the themes' contrast), run with Node's own test runner
(`node --test`), which the test command installs from Debian where it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def test_the_page_logic_passes_node_s_own_tests() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "Node.js is missing: ./scripts/test installs Debian's nodejs, or install it"
    suites = sorted(str(path) for path in HERE.glob("*.test.mjs"))
    assert suites
    run = subprocess.run(
        [node, "--test", *suites], capture_output=True, text=True, timeout=120, cwd=HERE
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass" in run.stdout
