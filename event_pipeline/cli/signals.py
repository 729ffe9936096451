"""The command's handling of SIGINT and SIGTERM: stop at once before the job, close the row after it.

Dagster puts its own handlers in place while a run executes (and turns a
signal into a step failure); the interpreter's wakeup fd still receives the
number of every signal, so the message can name it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import ModuleType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stops: list[int] = []  # the stop signals received, in order
_handling_stops = False  # set by install(): this process is the console script and owns its signal handlers
_wakeup: int | None = None


def install() -> None:
    """The console script's handlers: a stop signal raises KeyboardInterrupt where the command is."""
    global _handling_stops
    _handling_stops = True
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    _watch_signals()


def _stop(signum: int, _frame: Any) -> None:
    """SIGINT or SIGTERM: stop where we are, the way Dagster and the libraries expect (KeyboardInterrupt)."""
    _stops.append(signum)
    raise KeyboardInterrupt


def _note_stop(signum: int, _frame: Any) -> None:
    """While the result is settled and printed, a further signal is only noted: the row must be closed."""
    _stops.append(signum)


def defer_stops() -> None:
    if _handling_stops:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _note_stop)


def _watch_signals() -> None:
    global _wakeup
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _wakeup = read


def received() -> list[int]:
    """The stop signals received so far, in order (those only Dagster's handlers saw included)."""
    if _wakeup is not None:
        with contextlib.suppress(OSError):  # BlockingIOError: nothing new
            _stops.extend(n for n in os.read(_wakeup, 512) if n in STOP_SIGNALS and n not in _stops)
    return _stops


def interrupted(when: str) -> str:
    """ "interrupted by SIGTERM <when>": the first stop signal received, by name."""
    stops = received()
    name = signal.Signals(stops[0]).name if stops else "a signal"
    return f"interrupted by {name} {when}"


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back by the kernel for the block, delivered (and handled) as soon as it ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def settings_module() -> ModuleType:
    """:mod:`event_pipeline.settings`, first imported with the stop signals held: it loads pydantic, whose
    compiled core aborts with an uncatchable panic when a KeyboardInterrupt interrupts its initialisation.
    A signal received meanwhile stops the command right after (one FAILURE line, as ever)."""
    with signals_held():
        from event_pipeline import settings
    return settings
