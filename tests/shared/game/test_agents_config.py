"""The LLM agents' roles and prompts from YAML: the service's file, an operator's over it,
and a bad file refused at start with the key it is about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.game.llm.agents_config import DEFAULT_AGENTS_FILE, load_agents
from tests.shared.game.test_llm_narrator import Recorder, exploring_state, narrate, settings
from tests.support.fake_llm import FakeLLM, fake_llm
from tests.support.processes import run_python


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with fake_llm() as fake:
        yield fake


def test_the_services_file_gives_each_agent_its_role() -> None:
    agents = load_agents()
    assert agents.narrator.system.startswith(
        "You are the Narrator of Pocket Portals, a fantasy text adventure. Write in the second"
    )
    assert agents.keeper.system.startswith("You are the Game Keeper. In one short sentence")
    assert agents.jester.share == 0.1 and agents.chronicler.label == "The Chronicler records"
    assert agents.innkeeper.interview == "Ask the newcomer: {question}"


def test_an_operators_file_overrides_field_by_field(server: FakeLLM, tmp_path: Path) -> None:
    mine = tmp_path / "agents.yaml"
    mine.write_text(
        "narrator:\n"
        "  role: the Bard of the Broken Lute\n"
        "  prompt: |-\n"
        "    Sing of it. {context}\n"
        "    Deed: {action}\n"
        "    Fate: {happened}\n"
        "    {notes}\n"
        "    {ending}\n"
    )
    agents = load_agents(mine)
    assert agents.narrator.system.startswith("You are the Bard of the Broken Lute. Write in")
    assert agents.keeper == load_agents().keeper  # untouched
    state, action = exploring_state()
    before = len(server.requests)
    narrate(settings(server, tmp_path, agents_file=mine), Recorder(), state, action)
    system, user = (m["content"] for m in server.requests[before:][-1]["messages"])
    assert system.startswith("You are the Bard of the Broken Lute.")
    assert user.startswith("Sing of it. Hero:") and "\nDeed: <player_action>" in user
    assert "The player's options now:\n1. " in user


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("keeper: [not, a, mapping]", "keeper must be a mapping"),
        ("wizard:\n  role: a wizard\n", "wizard: Extra inputs are not permitted"),
        ("keeper:\n  colour: red\n", "keeper.colour: Extra inputs are not permitted"),
        ("jester:\n  share: 2\n", "jester.share: Input should be less than or equal to 1"),
        ("keeper:\n  role: ''\n", "keeper.role: String should have at least 1 character"),
        ("keeper:\n  prompt: 'Rolls: {dice}'\n", "keeper.prompt uses {dice}; it may use {rolls}"),
        ("jester:\n  prompt: 'Unclosed {action'\n", "jester.prompt is not a template"),
        ("innkeeper:\n  interview: null\n", "innkeeper.interview is required"),
        ("narrator: {role: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    bad = tmp_path / "agents.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigurationError) as refused:
        load_agents(bad)
    assert named in refused.value.message and str(bad) in refused.value.message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_agents(tmp_path / "nowhere.yaml")


def test_a_worker_with_a_bad_file_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "agents.yaml"
    bad.write_text("keeper:\n  prompt: 'Rolls: {dice}'\n")
    done = run_python(
        ["-m", "celery", "-A", "worker", "worker", "-P", "solo"],
        {
            "SESSION_BACKEND": "redis",
            "REDIS_URL": "redis://127.0.0.1:9/0",  # never reached: it refuses first
            "CREWAI_STORAGE_DIR": str(tmp_path / "crewai"),
            "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
            "HOME": str(tmp_path),
            "AGENTS_FILE": str(bad),
        },
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "keeper.prompt uses {dice}" in output, output[-3000:]


def test_the_file_ships_with_the_package() -> None:
    assert DEFAULT_AGENTS_FILE.is_file()
    assert DEFAULT_AGENTS_FILE.parent.name == "config"
