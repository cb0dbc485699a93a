"""Log lines: JSON with the ids a record carries, text on request, never a token."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from shared.logs import (
    CORRELATION_ID,
    JsonFormatter,
    RedactTokens,
    TextFormatter,
    configure_logging,
)
from shared.settings import Settings


def emit(record: logging.LogRecord) -> dict[str, object]:
    assert RedactTokens().filter(record)
    line: dict[str, object] = json.loads(JsonFormatter().format(record))
    return line


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("worker.pipeline", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_json_line_carries_the_ids_of_the_record() -> None:
    line = emit(record("turn %s started", "t1", session_id="s1", turn_id="t1"))
    assert line["message"] == "turn t1 started"
    assert line["level"] == "INFO" and line["logger"] == "worker.pipeline"
    assert line["session_id"] == "s1" and line["turn_id"] == "t1"
    assert "correlation_id" not in line  # outside a request
    assert str(line["time"]).endswith("+00:00")


def test_the_correlation_id_of_the_request_being_handled_is_stamped() -> None:
    token = CORRELATION_ID.set("req-42")
    try:
        line = emit(record("answered"))
    finally:
        CORRELATION_ID.reset(token)
    assert line["correlation_id"] == "req-42"


def test_tokens_are_blanked_in_messages_and_tracebacks() -> None:
    secret = "Qx7pL0" * 7
    line = emit(record('"GET /sessions/abc/events?token=%s HTTP/1.1" 200', secret))
    assert secret not in json.dumps(line) and "token=[redacted]" in str(line["message"])
    try:
        raise RuntimeError(f"Authorization: Bearer {secret}")
    except RuntimeError:
        failing = record("boom")
        failing.exc_info = sys.exc_info()
    line = emit(failing)
    assert secret not in json.dumps(line) and "Bearer [redacted]" in str(line["exc_info"])
    text = TextFormatter().format(failing)
    assert secret not in text and "Bearer [redacted]" in text


@pytest.mark.parametrize(
    "query",
    [
        "token={}",
        "%74oken={}",
        "tok%65n={}",
        "TOKEN={}",
        "last_event_id=3&token={}&x=1",
        "next=/play?token={}",
    ],
)
def test_a_token_is_blanked_however_its_name_is_spelled(query: str) -> None:
    # The gateway decodes a parameter's name before it reads it; so does the redaction.
    secret = "Qx7pL0" * 7
    line = emit(record('"GET /sessions/abc/events?%s HTTP/1.1" 200', query.format(secret)))
    assert secret not in json.dumps(line)
    assert "=[redacted]" in str(line["message"])


def test_other_parameters_are_left_alone() -> None:
    line = emit(record("GET /x?tokenizer=kept&wait=5"))
    assert line["message"] == "GET /x?tokenizer=kept&wait=5"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_configure_logging_routes_uvicorn_through_the_chosen_format(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    touched = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in touched]
    touched[0].handlers = [logging.StreamHandler(sys.stderr)]
    try:
        configure_logging(Settings(_env_file=None, log_format=log_format))  # type: ignore[call-arg]
        logging.getLogger("uvicorn.access").warning("GET /healthz?token=abc 200")
        logged = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
            lg.handlers, lg.level, lg.propagate = handlers, level, propagate
    assert "token=abc" not in logged
    if log_format == "json":
        assert json.loads(logged)["logger"] == "uvicorn.access"
    else:
        assert "WARNING" in logged and "uvicorn.access" in logged


@pytest.mark.parametrize(("level", "per_call_lines"), [("INFO", False), ("DEBUG", True)])
def test_http_clients_and_celery_do_not_log_every_call_unless_debugging(
    level: str, per_call_lines: bool
) -> None:
    names = ("httpx", "httpcore", "celery.app.trace", "celery.worker.strategy")
    touched = [logging.getLogger(n) for n in ("", *names)]
    saved = [(lg.handlers[:], lg.level) for lg in touched]
    try:
        configure_logging(Settings(_env_file=None, log_level=level))  # type: ignore[call-arg]
        for name in names:
            assert logging.getLogger(name).isEnabledFor(logging.INFO) is per_call_lines
            assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    finally:
        for lg, (handlers, lg_level) in zip(touched, saved, strict=True):
            lg.handlers, lg.level = handlers, lg_level
