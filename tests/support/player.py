"""A player of the HTTP API, as a client would be written against docs/api.md."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.sse import SseEvent, read_events

__all__ = ["CLIENT_LIMITS", "Player"]

# uvicorn closes a connection idle for 5 s, httpx keeps one for 5 s by default: a request sent
# on it at that instant is lost ("connection reset"). Letting go first avoids the race.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


class Player:
    def __init__(
        self,
        base_url: str,
        *,
        seed: int | None = None,
        client: httpx.Client | None = None,
        timeout: float = 60,
    ) -> None:
        self.base_url = base_url
        self.http = client or httpx.Client(base_url=base_url, timeout=timeout, limits=CLIENT_LIMITS)
        body = {"seed": seed} if seed is not None else None
        response = self.http.post("/sessions", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        self.session_id: str = created["session_id"]
        self.token: str = created["player_token"]
        self.initial_state: dict[str, Any] = created["state"]

    @classmethod
    def resume(cls, base_url: str, session_id: str, token: str, *, timeout: float = 60) -> Player:
        """The same player back with an adventure they already have (a new client)."""
        player = cls.__new__(cls)
        player.base_url = base_url
        player.http = httpx.Client(base_url=base_url, timeout=timeout, limits=CLIENT_LIMITS)
        player.session_id, player.token, player.initial_state = session_id, token, {}
        return player

    def finished(self, turn_id: str, timeout: float) -> dict[str, Any]:
        """Long-poll `turn_id` until it is completed or failed, for at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            turn = self.turn(turn_id, wait=min(30, max(0, deadline - time.monotonic())))
            if turn["status"] in ("completed", "failed") or time.monotonic() >= deadline:
                return turn

    def close(self) -> None:
        self.http.close()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post(
            f"/sessions/{self.session_id}/turns", json=body, headers={**self.auth, **headers}
        )

    def turn(self, turn_id: str, wait: float = 0) -> dict[str, Any]:
        response = self.http.get(
            f"/sessions/{self.session_id}/turns/{turn_id}", params={"wait": wait}, headers=self.auth
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def play(self, body: dict[str, Any], wait: float = 30) -> dict[str, Any]:
        accepted = self.submit(body)
        assert accepted.status_code == 202, accepted.text
        turn = self.turn(accepted.json()["turn_id"], wait=wait)
        assert turn["status"] == "completed", turn
        return turn

    def state(self) -> dict[str, Any]:
        response = self.http.get(f"/sessions/{self.session_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def events(
        self,
        *,
        last_event_id: str | None = None,
        timeout: float = 60,
        until: Any,
        on_open: Any = None,
    ) -> list[SseEvent]:
        headers = dict(self.auth)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return read_events(
            f"{self.base_url}/sessions/{self.session_id}/events",
            headers=headers,
            until=until,
            timeout=timeout,
            on_open=on_open,
        )
