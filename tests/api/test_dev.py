"""`./scripts/dev` (python -m api.dev): a busy port is one clear line naming how to choose
another, before anything else is printed."""

from __future__ import annotations

import socket

from tests.support.processes import run_python


def test_a_busy_port_names_the_option_and_the_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_python(["-m", "api.dev", "--port", str(port)], {})
    assert done.returncode == 1
    assert f"Cannot serve on 127.0.0.1:{port}" in done.stderr
    assert f"--port {port + 1}" in done.stderr
    assert f"PORTALS_HTTP_PORT={port + 1}" in done.stderr
    # No banner first: nothing says the server is up.
    assert "dev server on" not in done.stderr


def test_the_port_may_come_from_the_environment() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_python(["-m", "api.dev"], {"PORTALS_HTTP_PORT": str(port)})
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr
