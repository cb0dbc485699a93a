"""Schema versions of stored states: older ones migrated on read, newer ones refused."""

from __future__ import annotations

import pytest

from shared.errors import SchemaTooNew
from shared.models import SCHEMA_VERSION, GameState
from shared.models.migrations import MIGRATIONS, Document, migrate_state


def current_document() -> Document:
    return GameState(session_id="s" * 24).model_dump(mode="json")


def test_every_older_version_has_a_step() -> None:
    assert all(version in MIGRATIONS for version in range(1, SCHEMA_VERSION))


def test_a_current_document_is_left_as_it_is() -> None:
    document = current_document()
    assert migrate_state(document) == document


def test_older_documents_go_through_each_step_in_order() -> None:
    # A two-step history: v1 called the place "where", v2 named it "place", v3 "location".
    def v1_to_v2(doc: Document) -> Document:
        doc["place"] = doc.pop("where")
        return doc

    def v2_to_v3(doc: Document) -> Document:
        doc["location"] = doc.pop("place").title()
        return doc

    old = {"schema_version": 1, "session_id": "abc", "where": "the old mill"}
    migrated = migrate_state(old, current=3, migrations={1: v1_to_v2, 2: v2_to_v3})
    assert migrated == {"schema_version": 3, "session_id": "abc", "location": "The Old Mill"}
    assert old["where"] == "the old mill"  # the input is not changed in place


def test_a_newer_document_is_refused_with_both_versions() -> None:
    document = {**current_document(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(SchemaTooNew) as refused:
        migrate_state(document)
    assert refused.value.found == SCHEMA_VERSION + 1
    assert refused.value.supported == SCHEMA_VERSION
    assert refused.value.session_id == "s" * 24


def test_a_missing_step_is_a_bug_not_a_guess() -> None:
    with pytest.raises(ValueError, match="no migration from state schema 1 to 2"):
        migrate_state({"schema_version": 1}, current=2, migrations={})


def test_a_version_1_state_reads_as_version_2() -> None:
    # As the service stored it before the interview and the epilogue phase existed.
    stored = current_document()
    del stored["character_draft"]
    stored |= {"schema_version": 1, "phase": "exploration", "adventure_turn": 7}
    state = GameState.model_validate(migrate_state(stored))
    assert state.schema_version == SCHEMA_VERSION
    assert state.character_draft is None and state.adventure_turn == 7


def version_2_document() -> Document:
    """A hero mid-quest and mid-fight, as version 2 stored it: objectives by their texts,
    moments as plain strings, a foe's damage as a die size."""
    quest = {
        "quest_id": "barrow-king",
        "title": "The Barrow King",
        "description": "The old king stirs in his barrow.",
        "objectives": [
            "Find the barrow's hidden door",
            "Learn the king's true name from the hermit",
            "Defeat the barrow king",
        ],
        "completed_objectives": ["Find the barrow's hidden door"],
        "reward": "the barrow king's iron crown",
    }
    gone = {**quest, "quest_id": "no-longer-in-the-content", "title": "The Old Road"}
    gone["objectives"] = ["Ask the ferryman the way", "Defeat the river troll"]
    gone["completed_objectives"] = list(gone["objectives"])
    combat = {
        "enemy_name": "ash wolf",
        "enemy_health": 5,
        "enemy_health_max": 9,
        "enemy_armor": 11,
        "enemy_attack_bonus": 2,
        "enemy_damage": 4,
    }
    document = current_document()
    for field in ("failed_quests", "hero_edge"):
        del document[field]
    return document | {
        "schema_version": 2,
        "phase": "combat",
        "location": "the hermit's hut",
        "active_quest": quest,
        "completed_quests": [gone],
        "combat_state": combat,
        "adventure_moments": ["set out from the crossroads inn", "defeated the ash wolf"],
    }


def test_a_version_2_state_mid_quest_and_mid_fight_reads_as_version_3() -> None:
    state = GameState.model_validate(migrate_state(version_2_document()))
    assert state.schema_version == SCHEMA_VERSION == 3
    quest = state.active_quest
    assert quest is not None and quest.current is not None
    # Objectives the content still has come back whole, clue and all.
    assert quest.current.subject == "the hermit" and "Hollowbone" in quest.current.clue
    # One the content no longer has is read from its words.
    old = state.completed_quests[0]
    assert [(o.kind.value, o.subject) for o in old.objectives] == [
        ("talk", "Ask the ferryman the way"),
        ("fight", "river troll"),
    ]
    assert old.is_complete
    assert state.combat_state is not None and state.combat_state.enemy_damage == "1d4"
    assert [m.text for m in state.adventure_moments] == [
        "set out from the crossroads inn",
        "defeated the ash wolf",
    ]
    assert state.failed_quests == [] and state.hero_edge is None


def test_a_version_3_state_is_refused_by_code_that_knows_only_version_2() -> None:
    with pytest.raises(SchemaTooNew):
        migrate_state(current_document(), current=2)


def test_a_version_2_state_is_refused_by_code_that_knows_only_version_1() -> None:
    with pytest.raises(SchemaTooNew):
        migrate_state(current_document(), current=1)
