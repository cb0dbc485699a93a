"""The request body limit: a declared length over it and a chunked body that grows past it
are both 413, and a chunked body is not read further than the limit."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from tests.support.player import Player


def _read_response(connection: socket.socket) -> tuple[bytes, bool]:
    """The bytes the server sent, and whether it then closed the connection. A server that
    closes with our unread chunks still in its buffer resets the connection: closed too."""
    connection.settimeout(10)
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received, True
        except TimeoutError:
            return received, False
        if not chunk:
            return received, True
        received += chunk


def test_a_chunked_body_over_the_limit_is_413_and_not_read_on(player: Player) -> None:
    address = urlsplit(player.base_url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            (
                f"POST /sessions/{player.session_id}/turns HTTP/1.1\r\n"
                f"Host: {address.hostname}\r\nAuthorization: Bearer {player.token}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"x" * 1024
        # 20 KiB over a 16 KiB limit, and no final chunk: a server that kept reading would
        # wait for the rest and never answer.
        for _ in range(20):
            try:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed as soon as the limit was passed
        response, closed = _read_response(connection)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), response[:300]
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert closed
    assert player.state()["version"] == 0


def test_a_declared_length_over_the_limit_is_413(player: Player) -> None:
    response = player.http.post(
        f"/sessions/{player.session_id}/turns",
        content=b"{" + b" " * 20_000 + b"}",
        headers={**player.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
