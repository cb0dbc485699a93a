"""An adventure as a Markdown document a player can keep or share: the hero, the quests won
and lost, what the chronicle remembers, and the turns as told.

The state keeps the newest `HISTORY_LIMIT` turns in full; a longer adventure's earlier turns
live on only in the chronicle's moments, and the document says so."""

from __future__ import annotations

from shared.game.content import CLASSES
from shared.game.rules.ending import chronicle
from shared.models import GameState, Quest

__all__ = ["story_filename", "story_markdown"]

_ABILITIES = ("strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma")


def _quote(text: str) -> str:
    """Player or narrator text as a Markdown blockquote, each line quoted."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _hero(state: GameState) -> list[str]:
    sheet = state.character_sheet
    if sheet is None:
        return ["*No hero was made.*", ""]
    template = CLASSES.get(sheet.character_class)
    lines = [
        "## The hero",
        "",
        f"**{sheet.name}**, level {sheet.level} {sheet.race} {sheet.character_class}. "
        f"Health {state.health_current} of {state.health_max}.",
        "",
        "| " + " | ".join(a[:3].upper() for a in _ABILITIES) + " |",
        "|" + "---:|" * len(_ABILITIES),
        "| " + " | ".join(str(getattr(sheet, a)) for a in _ABILITIES) + " |",
        "",
        f"Carrying: {', '.join(sheet.equipment) or 'nothing'}.",
    ]
    if template is not None and template.feature:
        lines.append(f"Gift: {template.feature}.")
    if sheet.backstory:
        lines += ["", _quote(sheet.backstory)]
    return [*lines, ""]


def _quest_line(quest: Quest) -> str:
    if quest.failed:
        return f"- **{quest.title}**, lost: {quest.failed}"
    return f"- **{quest.title}**: {quest.description} Reward: {quest.reward}."


def _quests(state: GameState) -> list[str]:
    lines = ["## Quests", ""]
    done = [*state.completed_quests, *state.failed_quests]
    if state.active_quest is not None:
        done.append(state.active_quest)
    if not done:
        return [*lines, "None taken.", ""]
    lines += [_quest_line(q) for q in state.completed_quests]
    lines += [_quest_line(q) for q in state.failed_quests]
    if state.active_quest is not None:
        lines.append(f"- **{state.active_quest.title}**, still under way.")
    return [*lines, ""]


def _turns(state: GameState) -> list[str]:
    history = state.conversation_history
    lines = ["## The story as told", ""]
    if not history:
        return [*lines, "*Nothing told yet.*", ""]
    if len(history) < state.version:
        lines += [
            f"*The first {state.version - len(history)} turns are remembered only by the "
            f"chronicle; the last {len(history)} follow in full.*",
            "",
        ]
    for entry in history:
        lines += [f"**You:** {entry.action}", "", entry.narrative.strip(), "", "---", ""]
    return lines[:-2]


def story_markdown(state: GameState) -> str:
    sheet = state.character_sheet
    title = f"The tale of {sheet.name}" if sheet else "An untold tale"
    status = (
        "The tale is told."
        if state.adventure_completed
        else f"Still being told: turn {state.adventure_turn} of {state.max_turns}."
    )
    lines = [f"# {title}", "", f"*Pocket Portals. {status}*", ""]
    lines += _hero(state) + _quests(state)
    remembered = chronicle(state)
    if remembered:
        name = sheet.name if sheet else "The wanderer"
        lines += ["## What the chronicle remembers", ""]
        lines += [f"- Turn {m.turn}: {name} {m.text}." for m in remembered]
        lines.append("")
    lines += _turns(state)
    return "\n".join(lines).rstrip() + "\n"


def story_filename(state: GameState) -> str:
    sheet = state.character_sheet
    name = "".join(c for c in (sheet.name if sheet else "untold") if c.isascii() and c.isalnum())
    name = name or "hero"
    return f"pocket-portals-{name.lower()}.md"
