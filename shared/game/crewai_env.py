"""CrewAI's process-wide switches, set before `crewai` is first imported.

Telemetry, tracing and the version check each try the network on every flow start (and a
telemetry flush holds process exit for seconds), so they are off unless an operator sets the
variables otherwise. Storage gets an absolute directory so workers started from any working
directory agree on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.directories import ensure_directory

__all__ = ["configure_crewai", "quiet_crewai_console"]

_DEFAULTS = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OTEL_SDK_DISABLED": "true",
}


def configure_crewai(storage_dir: Path) -> None:
    # This is the one place that writes the environment: crewai reads these variables itself.
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
    ensure_directory(storage_dir, "CREWAI_STORAGE_DIR")
    os.environ.setdefault("CREWAI_STORAGE_DIR", str(storage_dir.absolute()))


def quiet_crewai_console() -> None:
    """Flows print progress with rich to stdout; a worker's logs are not the place for it.

    Silencing the console is not enough: CrewAI's console listener still handles every
    event of every flow and LLM call, building rich trees and Live panels that nobody sees,
    and it appends each streamed chunk of the whole process to one buffer that it reads back
    in full on every chunk (memory that only grows, CPU that grows with it, shared by every
    thread without a lock). In a worker holding many LLM turns at once that was most of a
    turn's CPU. Its handlers are detached from the event bus; the service's own listeners
    (the narration stream) stay."""
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.event_listener import event_listener

    event_listener.formatter.console.quiet = True
    registered = getattr(crewai_event_bus, "_sync_handlers", {})
    for event_type, handlers in list(registered.items()):
        for handler in handlers:
            if getattr(handler, "__module__", "") == _CONSOLE_LISTENER:
                crewai_event_bus.off(event_type, handler)


_CONSOLE_LISTENER = "crewai.events.event_listener"
