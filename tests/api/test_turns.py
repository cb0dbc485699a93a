"""POST /sessions/{id}/turns and GET /sessions/{id}/turns/{tid} (poll and long-poll)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import EVERY_STORE
from tests.support.player import Player


@EVERY_STORE
def test_play_by_choice_and_by_action(player: Player) -> None:
    accepted = player.submit({"choice_index": 3})
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "queued"
    assert body["links"] == {
        "self": f"/sessions/{player.session_id}/turns/{body['turn_id']}",
        "events": f"/sessions/{player.session_id}/events",
    }
    done = player.turn(body["turn_id"], wait=30)
    assert done["status"] == "completed" and done["error"] is None
    assert "Pip" in done["result"]["narrative"]
    assert done["result"]["state_version"] == 1
    quest_choice = done["result"]["choices"][0]

    typed = player.play({"action": f"  I accept: {quest_choice.split(': ')[1]}  "})
    state = player.state()
    assert state["version"] == 2
    assert state["state"]["active_quest"]["title"] == quest_choice.split(": ")[1]
    history = state["state"]["conversation_history"]
    assert [h["turn_id"] for h in history][0] == body["turn_id"]
    assert history[-1]["narrative"] == typed["result"]["narrative"]
    assert history[-1]["action"] == f"I accept: {quest_choice.split(': ')[1]}"
    assert state["state"]["current_choices"] == typed["result"]["choices"]


def test_poll_without_wait_answers_at_once(player: Player) -> None:
    turn_id = player.submit({"action": "Look around"}).json()["turn_id"]
    assert player.turn(turn_id)["status"] in {"queued", "running", "completed"}
    assert player.turn(turn_id, wait=30)["status"] == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": ""},
        {"action": "   "},
        {"action": "x" * 501},
        {"action": "a\tb"},
        {"action": "bell\x07"},
        {"action": "lone \ud800 surrogate"},
        {"action": "next line\x85(C1)"},
        {"action": "reads \u202ebackwards"},
        {"action": "isolate \u2066x\u2069"},
        {"action": "invisible \U000e0041\U000e0042 tags"},
        {"action": 5},
        {"choice_index": 0},
        {"choice_index": 5},  # the first turn offers four choices
        {"choice_index": "1"},
        {"choice_index": 1.0},
        {"choice_index": True},
        {"action": "a", "choice_index": 1},
        {"action": "a", "extra": 1},
    ],
)
def test_bad_turns_are_422(player: Player, body: dict[str, object]) -> None:
    # ASCII JSON, as a client escaping every character would send it (a lone surrogate can
    # only travel as an escape).
    response = player.http.post(
        f"/sessions/{player.session_id}/turns",
        content=json.dumps(body).encode(),
        headers={**player.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert player.state()["version"] == 0


def test_any_language_and_emoji_are_fine(player: Player) -> None:
    turn = player.play({"action": "Je suis Zoë, 日本の忍者 👩\u200d🚀"})
    assert turn["status"] == "completed"


def test_newlines_and_500_characters_are_fine(player: Player) -> None:
    assert player.submit({"action": "line one\nline two"}).status_code == 202
    assert player.submit({"action": "y" * 500}).status_code == 202


def test_malformed_json_and_huge_bodies(player: Player) -> None:
    url = f"/sessions/{player.session_id}/turns"
    headers = {**player.auth, "Content-Type": "application/json"}
    broken = player.http.post(url, content=b'{"action": ', headers=headers)
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"
    huge = player.http.post(url, content=b'{"action": "' + b"x" * 20000 + b'"}', headers=headers)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


@EVERY_STORE
def test_idempotency_key(player: Player) -> None:
    first = player.submit({"action": "Look around"}, **{"Idempotency-Key": "abc-1"})
    again = player.submit({"action": "Look around"}, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["turn_id"] == again.json()["turn_id"]
    other = player.submit({"action": "Rest"}, **{"Idempotency-Key": "abc-1"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    for bad_key in (b"", b"has space", b"x" * 256, "caf\u00e9".encode()):
        response = player.http.post(
            f"/sessions/{player.session_id}/turns",
            json={"action": "a"},
            headers=[*player.auth.items(), ("Idempotency-Key", bad_key)],
        )
        assert response.status_code == 422, bad_key
    player.turn(first.json()["turn_id"], wait=30)
    assert player.state()["version"] == 1


@EVERY_STORE
def test_too_many_pending_turns(gateway_url_factory: Callable[..., str]) -> None:
    url = gateway_url_factory(max_pending_turns=2, narrator_delay=1.0)
    player = Player(url)
    try:
        statuses = [player.submit({"action": f"Look {i}"}).status_code for i in range(4)]
        assert statuses[:2] == [202, 202]
        assert 429 in statuses
        refused = player.submit({"action": "one more"})
        if refused.status_code == 429:
            assert refused.json()["error"]["code"] == "too_many_pending_turns"
            assert int(refused.headers["Retry-After"]) >= 1
    finally:
        player.close()


def test_one_client_is_held_to_its_turns_in_flight_across_sessions(
    gateway_url_factory: Callable[..., str],
) -> None:
    """A flood of sessions from one address meets that address's own limit; a player at
    another address is not held back by it, and the flooder's next turn is taken as soon as
    one of its turns has finished."""
    url = gateway_url_factory(max_turns_in_flight_per_client=3, narrator_delay=4.0)
    flooder = [Player(url), Player(url)]
    other_address = httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60
    )
    honest = Player(url, client=other_address)
    try:
        first = flooder[0].submit({"action": "Look around"})
        accepted = [first.status_code]
        accepted += [flooder[0].submit({"action": "Look up"}).status_code]
        accepted += [flooder[1].submit({"action": "Look down"}).status_code]
        assert accepted == [202, 202, 202]
        refused = flooder[1].submit({"action": "Look again"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_turns_in_flight"
        assert int(refused.headers["Retry-After"]) >= 1
        assert honest.submit({"action": "Look around"}).status_code == 202

        done = flooder[0].finished(first.json()["turn_id"], timeout=120)
        assert done["status"] == "completed"
        assert flooder[1].submit({"action": "Look again"}).status_code == 202
    finally:
        for player in (*flooder, honest):
            player.close()


@EVERY_STORE
def test_refused_turns_give_their_admission_tickets_back(
    gateway_url_factory: Callable[..., str],
) -> None:
    """A new turn's ticket is taken with the session's state (for its owner only), before
    the turn is checked: every refusal gives it back, or a client would be held to its limit
    by refused turns."""
    url = gateway_url_factory(max_turns_in_flight_per_client=2, narrator_delay=4.0)
    player = Player(url)
    try:
        turns = f"/sessions/{player.session_id}/turns"
        stranger = {"Authorization": "Bearer " + "x" * 43}
        refused = [
            player.http.post(turns, json={"action": "a"}, headers=stranger),
            player.http.post(
                f"/sessions/{'A' * 24}/turns", json={"action": "a"}, headers=player.auth
            ),
            player.submit({"choice_index": 4}, **{"Idempotency-Key": "bad key"}),
            player.submit({"choice_index": 5}),
        ]
        assert [r.status_code for r in refused] == [404, 404, 422, 422], [r.text for r in refused]
        # Refused before any ticket: without a token (even with a bad body), 401; with a body
        # that is not a turn (whoever's the token), 422.
        assert player.http.post(turns, json={"action": 5}).status_code == 401
        assert player.http.post(turns, json={"action": 5}, headers=stranger).status_code == 422
        assert player.submit({"action": "Look up"}).status_code == 202
        assert player.submit({"action": "Look down"}).status_code == 202
        assert player.submit({"action": "Look again"}).status_code == 429
    finally:
        player.close()


def test_deleting_a_session_gives_its_unfinished_turns_back(
    gateway_url_factory: Callable[..., str],
) -> None:
    url = gateway_url_factory(max_turns_in_flight_per_client=2, narrator_delay=4.0)
    doomed, other = Player(url), Player(url)
    try:
        assert doomed.submit({"action": "Look around"}).status_code == 202
        assert doomed.submit({"action": "Look up"}).status_code == 202
        assert other.submit({"action": "Look around"}).status_code == 429
        gone = doomed.http.delete(f"/sessions/{doomed.session_id}", headers=doomed.auth)
        assert gone.status_code == 204
        assert other.submit({"action": "Look around"}).status_code == 202
    finally:
        doomed.close()
        other.close()


def test_unknown_and_malformed_turns(player: Player) -> None:
    base = f"/sessions/{player.session_id}/turns"
    missing = player.http.get(f"{base}/{'A' * 16}", headers=player.auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "turn_not_found"
    assert player.http.get(f"{base}/bad*id", headers=player.auth).status_code == 422
    # Both malformed: the session id is the one named (it is checked first).
    both = player.http.get("/sessions/bad*id/turns/bad*id", headers=player.auth)
    assert both.status_code == 422 and "session_id" in both.json()["error"]["message"]
    turn_id = player.submit({"action": "a"}).json()["turn_id"]
    for wait in ("-1", "31", "soon"):
        response = player.http.get(f"{base}/{turn_id}", params={"wait": wait}, headers=player.auth)
        assert response.status_code == 422, wait
    assert player.http.get(f"{base}/{turn_id}").status_code == 401


@EVERY_STORE
def test_a_finished_adventure_accepts_no_more_turns(
    gateway_url_factory: Callable[..., str],
) -> None:
    player = Player(gateway_url_factory(max_turns=5), seed=1)
    try:
        state = player.state()["state"]
        for _ in range(40):  # the hero, 5 story turns, a last fight at most
            if state["phase"] == "epilogue":
                break
            player.play({"choice_index": 1})
            state = player.state()["state"]
        assert state["phase"] == "epilogue" and not state["adventure_completed"]
        assert state["current_choices"] == ["Hear how the tale ends"]
        sent = player.submit({"choice_index": 1}, **{"Idempotency-Key": "the-last-turn"})
        assert sent.status_code == 202, sent.text
        epilogue = player.turn(sent.json()["turn_id"], wait=30)
        assert epilogue["status"] == "completed", epilogue
        assert "Epilogue. " in epilogue["result"]["narrative"]
        assert epilogue["result"]["choices"] == []
        assert player.state()["state"]["adventure_completed"] is True
        refused = player.submit({"action": "one more"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "adventure_completed"
        # A client that never saw the epilogue's 202 retries it: it gets that turn back.
        retried = player.submit({"choice_index": 1}, **{"Idempotency-Key": "the-last-turn"})
        assert retried.status_code == 202, retried.text
        assert retried.json()["turn_id"] == sent.json()["turn_id"]
        assert retried.json()["status"] == "completed"
        reused = player.submit({"action": "other"}, **{"Idempotency-Key": "the-last-turn"})
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
    finally:
        player.close()


def test_a_body_that_is_not_json_says_what_to_send(player: Player) -> None:
    url = f"/sessions/{player.session_id}/turns"
    # What `curl -d '{…}'` sends: a form content type.
    form = player.http.post(
        url,
        content=b'{"choice_index": 1}',
        headers={**player.auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 422
    message = form.json()["error"]["message"]
    assert "Content-Type: application/json" in message
    assert "application/x-www-form-urlencoded" in message
    assert '{"choice_index": 1}' in message and '{"action": "I look around"}' in message
    plain = player.http.post(
        url, content=b"1", headers={**player.auth, "Content-Type": "text/plain"}
    )
    assert "its Content-Type is text/plain" in plain.json()["error"]["message"]
    bare = player.http.post(url, content=b'{"choice_index": 1}', headers=player.auth)
    assert "it had no Content-Type" in bare.json()["error"]["message"]
    missing = player.http.post(url, headers=player.auth)
    assert missing.status_code == 422
    assert "this route takes a JSON body, for example" in missing.json()["error"]["message"]
    not_object = player.http.post(url, json=[1], headers=player.auth)
    assert "must be a JSON object" in not_object.json()["error"]["message"]
    session = player.http.post("/sessions", content=b'{"seed": 1}')
    assert session.status_code == 422
    assert '{"seed": 42}' in session.json()["error"]["message"]


def test_a_wrong_method_or_route_says_what_there_is(player: Player) -> None:
    wrong = player.http.put(f"/sessions/{player.session_id}/turns", headers=player.auth)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert wrong.json()["error"] == {
        "code": "method_not_allowed",
        "message": "This route does not take PUT; it takes POST.",
    }
    nowhere = player.http.get("/no/such/route")
    assert nowhere.status_code == 404
    assert "/openapi.json" in nowhere.json()["error"]["message"]
