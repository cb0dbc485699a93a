"""CrewAI's process-wide switches, set before `crewai` is first imported.

Telemetry, tracing and the version check each try the network on every flow start (and a
telemetry flush holds process exit for seconds), so they are off unless an operator sets the
variables otherwise. Storage gets an absolute directory so workers started from any working
directory agree on it.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from shared.directories import ensure_directory

__all__ = [
    "configure_crewai",
    "detach_idle_trace_collection",
    "keep_method_signatures",
    "quiet_crewai_console",
    "skip_environment_event",
]

_DEFAULTS = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OTEL_SDK_DISABLED": "true",
}


def configure_crewai(storage_dir: Path, *, traced: bool = False) -> None:
    """`traced`: the service exports its own traces (OTEL_EXPORTER_OTLP_ENDPOINT), so the
    OpenTelemetry SDK must stay on; CrewAI's telemetry is off by its own switch all the same."""
    # This is the one place that writes the environment: crewai reads these variables itself.
    for name, value in _DEFAULTS.items():
        if traced and name == "OTEL_SDK_DISABLED":
            continue
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
_TRACE_LISTENER = "crewai.events.listeners.tracing.trace_listener"


def detach_idle_trace_collection() -> bool:
    """Take CrewAI's trace collector off the event bus when tracing is off. True if it was.

    With `CREWAI_TRACING_ENABLED=false`, CrewAI still registers the collector when its user
    file (under CREWAI_STORAGE_DIR) has no record of a first run, as on every fresh worker
    image: it then builds a trace event in its own thread for every flow start and finish
    and every LLM call, about 0.2 ms of CPU per turn, for traces that are never sent. The
    collector registers once per process: set up now and detached, it stays off. An operator
    who turns tracing on keeps it."""
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.listeners.tracing.trace_listener import TraceCollectionListener
    from crewai.events.listeners.tracing.utils import should_enable_tracing

    if should_enable_tracing():
        return False
    TraceCollectionListener().setup_listeners(crewai_event_bus)
    registered = getattr(crewai_event_bus, "_sync_handlers", {})
    for event_type, handlers in list(registered.items()):
        for handler in handlers:
            if getattr(handler, "__module__", "") == _TRACE_LISTENER:
                crewai_event_bus.off(event_type, handler)
    return True


def skip_environment_event() -> None:
    """Keep the flow about to start in this context from announcing its environment.

    Every kickoff calls CrewAI's `get_env_context`, which emits a `DefaultEnvEvent` (after
    scanning the environment for coding assistants) unless its context variable says this
    context has emitted one already. A worker runs each step in a fresh copy of its task's
    context, so that was one more event through the bus on every turn, 40-75 us of CPU, for
    listeners this service does not have. CrewAI has no switch for it; the variable is its
    own guard (and if a later CrewAI drops it, this does nothing and its test says so)."""
    from crewai.utilities import env

    emitted = getattr(env, "_env_context_emitted", None)
    if emitted is not None:
        emitted.set(True)


def keep_method_signatures(flow_class: type) -> int:
    """Give each function a CrewAI flow method wraps its own `__signature__`; returns how many.

    CrewAI binds every flow method anew for every Flow it builds (`FlowMethod.__get__`), and
    each binding asks `inspect.signature` of the function it wraps: computed from the code
    object each time, for each of a flow's methods, on every turn (about 40 us of a 140 us
    flow construction, in-process). A function's own `__signature__` is what `inspect.signature`
    returns at once, and the one stored is the one it would compute."""
    from crewai.flow.flow_wrappers import FlowMethod

    kept = 0
    for member in vars(flow_class).values():
        wrapped = member
        while isinstance(wrapped, FlowMethod):
            wrapped = wrapped._meth
            if inspect.isfunction(wrapped) and "__signature__" not in vars(wrapped):
                wrapped.__signature__ = inspect.signature(wrapped)  # type: ignore[attr-defined]
                kept += 1
    return kept
