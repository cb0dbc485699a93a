"""POST/GET/DELETE /sessions."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.support.player import Player


def test_create_returns_id_token_and_a_view_without_secrets(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/sessions", json={"seed": 3})
    assert response.status_code == 201
    body = response.json()
    assert len(body["session_id"]) == 24 and len(body["player_token"]) >= 43
    state = body["state"]
    assert state["phase"] == "character_creation"
    assert 1 <= len(state["current_choices"]) <= 4
    assert state["conversation_history"] == [] and state["adventure_turn"] == 0
    for key in ("character_sheet", "active_quest", "combat_state"):
        assert state[key] is None
    text = response.text
    assert body["player_token"] not in text.replace(body["player_token"], "", 1)
    for internal in ("seed", "owner", "version", "schema_version"):
        assert internal not in state


def test_create_without_body_and_with_bad_bodies(gateway_url: str) -> None:
    assert httpx.post(f"{gateway_url}/sessions").status_code == 201
    for bad in ({"seed": "7"}, {"seed": -1}, {"colour": "red"}):
        response = httpx.post(f"{gateway_url}/sessions", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"


def test_same_seed_same_opening(gateway_url: str) -> None:
    a, b = Player(gateway_url, seed=9), Player(gateway_url, seed=9)
    try:
        assert a.play({"choice_index": 1})["result"] == b.play({"choice_index": 1})["result"]
    finally:
        a.close()
        b.close()


def test_get_needs_the_owners_token(player: Player) -> None:
    url = f"/sessions/{player.session_id}"
    got = player.http.get(url, headers=player.auth)
    assert got.status_code == 200
    assert got.json()["version"] == 0 and got.json()["session_id"] == player.session_id
    missing = player.http.get(url)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    for header in ("Basic abc", "Bearer", "Bearer a b", player.token):
        assert player.http.get(url, headers={"Authorization": header}).status_code == 401
    wrong = player.http.get(url, headers={"Authorization": "Bearer " + "x" * 43})
    unknown = player.http.get("/sessions/" + "A" * 24, headers=player.auth)
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "session_not_found"


def test_malformed_session_ids_are_refused(player: Player) -> None:
    for bad in ("short", "*" * 24, "a:b{c}d..e" + "x" * 14, "é" * 24, "x" * 500):
        response = player.http.get(f"/sessions/{bad}", headers=player.auth)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"


def test_delete_then_everything_is_404(player: Player) -> None:
    url = f"/sessions/{player.session_id}"
    assert player.http.delete(url).status_code == 401
    assert player.http.delete(url, headers=player.auth).status_code == 204
    assert player.http.get(url, headers=player.auth).status_code == 404
    assert player.http.delete(url, headers=player.auth).status_code == 404
    assert player.submit({"action": "hello"}).status_code == 404


def test_new_sessions_have_a_budget_of_their_own(gateway_url_factory: Callable[..., str]) -> None:
    url = gateway_url_factory(session_create_per_minute=2)
    with httpx.Client(base_url=url) as http:
        # Five straddle at most two minutes' windows of two: at least one is refused.
        created = [http.post("/sessions") for _ in range(5)]
        statuses = [r.status_code for r in created]
        assert statuses[0] == 201 and 429 in statuses and statuses.count(201) <= 4, statuses
        refused_answer = created[statuses.index(429)]
        refused = refused_answer.json()["error"]
        assert refused["code"] == "rate_limited" and "new sessions" in refused["message"]
        assert int(refused_answer.headers["Retry-After"]) >= 1
        # Playing the sessions one has is not held back by it.
        first = created[0].json()
        auth = {"Authorization": f"Bearer {first['player_token']}"}
        assert http.get(f"/sessions/{first['session_id']}", headers=auth).status_code == 200
        turn = http.post(
            f"/sessions/{first['session_id']}/turns", json={"choice_index": 1}, headers=auth
        )
        assert turn.status_code == 202


def test_the_story_is_markdown_for_its_owner_only(player: Player) -> None:
    player.play({"action": "My name is Torva, a dwarven cleric sworn to the mountain"})
    player.play({"choice_index": 1})
    url = f"/sessions/{player.session_id}/story"
    story = player.http.get(url, headers=player.auth)
    assert story.status_code == 200
    assert story.headers["content-type"] == "text/markdown; charset=utf-8"
    assert 'filename="pocket-portals-torva.md"' in story.headers["content-disposition"]
    text = story.text
    assert text.startswith("# The tale of Torva\n")
    assert "**Torva**, level 1 dwarf cleric" in text and "blessed mace" in text
    assert "**You:** My name is Torva, a dwarven cleric sworn to the mountain" in text
    assert "## Quests" in text and "## The story as told" in text
    assert player.token not in text
    assert player.http.get(url).status_code == 401
    wrong = player.http.get(url, headers={"Authorization": "Bearer " + "x" * 43})
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "session_not_found"
