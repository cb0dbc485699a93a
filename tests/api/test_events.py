"""GET /sessions/{id}/events: SSE, live and resumed."""

from __future__ import annotations

import threading

import httpx

from tests.support.player import Player
from tests.support.sse import SseEvent


def finished(turn_id: str):  # type: ignore[no-untyped-def]
    def check(events: list[SseEvent]) -> bool:
        return any(e.event == "turn.completed" and e.data["turn_id"] == turn_id for e in events)

    return check


def test_live_stream_then_resume_with_last_event_id(player: Player) -> None:
    submitted: list[str] = []

    def submit_once_connected() -> None:
        submitted.append(player.submit({"choice_index": 1}).json()["turn_id"])

    events = player.events(
        until=lambda evs: bool(submitted) and finished(submitted[0])(evs),
        on_open=lambda: threading.Thread(target=submit_once_connected).start(),
    )
    names = [e.event for e in events]
    assert names == ["turn.queued", "turn.started", "turn.completed"]
    completed = events[-1]
    assert completed.data["result"]["narrative"] == player.turn(submitted[0])["result"]["narrative"]
    ids = [e.id for e in events]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    # Missed while away: a second turn plays, then the client comes back.
    second = player.play({"choice_index": 1})
    resumed = player.events(last_event_id=events[-1].id, until=finished(second["turn_id"]))
    # Of a turn that finished while away, only its final event is retained: it carries the
    # whole result.
    assert [(e.event, e.data["turn_id"]) for e in resumed] == [
        ("turn.completed", second["turn_id"])
    ]
    assert resumed[0].data["result"] == second["result"]
    replay = player.events(last_event_id="0", until=finished(second["turn_id"]))
    assert [e.event for e in replay] == ["turn.completed", "turn.completed"]
    assert replay[0].id == events[-1].id


def test_token_in_query_and_refusals(player: Player) -> None:
    turn_id = player.play({"action": "Look around"})["turn_id"]
    url = f"{player.base_url}/sessions/{player.session_id}/events"
    from tests.support.sse import read_events

    events = read_events(
        f"{url}?token={player.token}", headers={"Last-Event-ID": "0"}, until=finished(turn_id)
    )
    assert events[-1].event == "turn.completed"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = httpx.get(f"{url}?token=nope", timeout=10)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "session_not_found"
    bad_cursor = httpx.get(url, headers={**player.auth, "Last-Event-ID": "yesterday"}, timeout=10)
    assert bad_cursor.status_code == 422


def test_stream_ends_when_the_session_is_deleted(player: Player) -> None:
    def delete_once_connected() -> None:
        player.http.delete(f"/sessions/{player.session_id}", headers=player.auth)

    url = f"{player.base_url}/sessions/{player.session_id}/events"
    with httpx.stream("GET", url, headers=player.auth, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        threading.Thread(target=delete_once_connected).start()
        body = "".join(response.iter_text())
    assert "turn." not in body


def test_a_new_event_source_resumes_from_the_url(player: Player) -> None:
    # A reloaded page: token and position in the URL, as EventSource allows.
    first = player.play({"choice_index": 1})
    second = player.play({"action": "Look around"})
    url = f"{player.base_url}/sessions/{player.session_id}/events?token={player.token}"
    from tests.support.sse import read_events

    everything = read_events(
        f"{url}&last_event_id=0", headers={}, until=finished(second["turn_id"])
    )
    assert [e.data["turn_id"] for e in everything] == [first["turn_id"], second["turn_id"]]
    after_first = read_events(
        f"{url}&last_event_id={everything[0].id}", headers={}, until=finished(second["turn_id"])
    )
    assert [e.data["turn_id"] for e in after_first] == [second["turn_id"]]
    # The header, sent by EventSource's own reconnection, wins over the URL.
    by_header = read_events(
        f"{url}&last_event_id=0",
        headers={"Last-Event-ID": everything[0].id},
        until=finished(second["turn_id"]),
    )
    assert [e.data["turn_id"] for e in by_header] == [second["turn_id"]]
    assert httpx.get(f"{url}&last_event_id=yesterday", timeout=10).status_code == 422
