"""The LLM agents' configuration: roles and prompt templates, kept in YAML as CrewAI projects
keep theirs (`config/agents.yaml` beside this module), overridable field by field by an
operator's file (`AGENTS_FILE`).

Loaded and validated once, at a worker's start: a file that cannot be read, a missing or
unknown field, or a template naming a field the service does not fill is a
`ConfigurationError` naming the key (`keeper.prompt`), not a failure at some later turn.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import ConfigurationError

__all__ = ["DEFAULT_AGENTS_FILE", "AgentConfig", "AgentsConfig", "load_agents"]

DEFAULT_AGENTS_FILE = Path(__file__).parent / "config" / "agents.yaml"

# The fields each template may use (what the narrator fills in).
TEMPLATE_FIELDS: dict[str, set[str]] = {
    "narrator.prompt": {"context", "action", "happened", "notes", "options", "ending"},
    "keeper.prompt": {"rolls"},
    "innkeeper.prompt": {"quests"},
    "innkeeper.interview": {"question"},
    "jester.prompt": {"action", "happened"},
    "chronicler.prompt": {"context", "fate", "moments"},
    "quest_designer.prompt": {"context", "count", "foes", "abilities"},
}
NonEmpty = Annotated[str, Field(min_length=1)]


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: NonEmpty
    backstory: str = ""
    goal: NonEmpty
    prompt: NonEmpty
    interview: str | None = None
    label: NonEmpty
    share: Annotated[float, Field(gt=0, le=1)]

    @property
    def system(self) -> str:
        parts = [f"You are {self.role}.", self.backstory.strip(), self.goal.strip()]
        return " ".join(part for part in parts if part)


class AgentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    narrator: AgentConfig
    keeper: AgentConfig
    innkeeper: AgentConfig
    jester: AgentConfig
    chronicler: AgentConfig
    quest_designer: AgentConfig


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"AGENTS_FILE {path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"AGENTS_FILE {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"AGENTS_FILE {path}: expected a mapping of agents")
    return data


def _merged(defaults: dict[str, Any], override: dict[str, Any], path: Path) -> dict[str, Any]:
    merged = {name: dict(fields) for name, fields in defaults.items()}
    for name, fields in override.items():
        if not isinstance(fields, dict):
            raise ConfigurationError(f"AGENTS_FILE {path}: {name} must be a mapping of fields")
        merged.setdefault(name, {}).update(fields)
    return merged


def _check_templates(config: AgentsConfig, path: Path) -> None:
    for key, allowed in TEMPLATE_FIELDS.items():
        agent, field = key.split(".")
        template = getattr(getattr(config, agent), field)
        if template is None:
            raise ConfigurationError(f"AGENTS_FILE {path}: {key} is required")
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError as exc:
            message = f"AGENTS_FILE {path}: {key} is not a template: {exc}"
            raise ConfigurationError(message) from None
        unknown = sorted(used - allowed)
        if unknown:
            raise ConfigurationError(
                f"AGENTS_FILE {path}: {key} uses {{{unknown[0]}}}; it may use "
                + ", ".join(f"{{{name}}}" for name in sorted(allowed))
            )


@lru_cache(maxsize=4)
def load_agents(path: Path | None = None) -> AgentsConfig:
    """The agents: the service's file, with `path`'s fields over it."""
    data = _read(DEFAULT_AGENTS_FILE)
    shown = path or DEFAULT_AGENTS_FILE
    if path is not None:
        data = _merged(data, _read(path), path)
    try:
        config = AgentsConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigurationError(f"AGENTS_FILE {shown}: {key}: {error['msg']}") from None
    _check_templates(config, shown)
    return config
