"""The command line's progress display: one line per import step on stderr, instead of Dagster's log.

``event-pipeline import`` runs the import job with :data:`progress_logger` as
its only logger (``--verbose``: Dagster's own console logger instead, as in a
UI run), so a terminal shows what the import is doing, step by step, in the
reference import order, and the result JSON stays the last line on stdout::

    [ 1/12] archive         0.4 s  archive OTS16: sha256 1f2e3d4c5b6a, 3 warnings
    [ 2/12] event           0.0 s  event: 1 records, 0 warnings
    ...

A step's line is its last informational message (the asset's own summary);
warnings are printed as they come, a failed step says so with its error.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import dagster as dg

LOGGER_NAME = "progress"  # the logger's key in the CLI's run config (see cli/importing.py)
WIDTH = 15  # the step name column: the longest asset name (session_types, import_result) fits
CHECKED_ASSET = "import_result"  # its checks' step keys start with it; shown as "check <name>"


class StepLines(logging.Handler):
    """A logging handler that turns Dagster's step events into one line per step on ``stream``."""

    def __init__(self, total: int, stream: Any = None):
        super().__init__(logging.DEBUG)  # Dagster logs its step events at DEBUG
        self.total = total
        self.stream = stream if stream is not None else terminal()
        self.done = 0
        self.started: dict[str, float] = {}
        self.last: dict[str, str] = {}

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr  # looked up late: tests and the CLI may swap sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key")
        event = meta.get("dagster_event")
        if event is None:
            message = meta.get("orig_message", record.getMessage())
            if record.levelno >= logging.WARNING and (step is None or step in self.started):
                # a step that never started only gets Dagster's "not executing" notices: the failure says it all
                self._write(f"        {step or 'run'}: warning: {message}")
            elif step and record.levelno >= logging.INFO:
                self.last[step] = message.splitlines()[0] if message else ""
            return
        kind = event.event_type_value
        if kind == dg.DagsterEventType.STEP_START.value and step:
            self.started[step] = time.monotonic()
        elif kind in (dg.DagsterEventType.STEP_SUCCESS.value, dg.DagsterEventType.STEP_FAILURE.value) and step:
            self.done += 1
            seconds = time.monotonic() - self.started.get(step, time.monotonic())
            if kind == dg.DagsterEventType.STEP_SUCCESS.value:
                detail = self.last.get(step, "ok")
            else:
                error = event.step_failure_data.error if event.step_failure_data else None
                detail = "FAILED: " + (_first_line(error.message) if error is not None else "see the result")
            width = len(str(self.total))
            name = step.replace(f"{CHECKED_ASSET}_", "check ", 1)
            self._write(f"[{self.done:>{width}}/{self.total}] {name:<{WIDTH}} {seconds:5.1f} s  {detail}")


def terminal() -> Any:
    """The process's stderr as it is now, on a file descriptor of its own, or None when stderr has none
    (a test's ``StringIO``: then ``sys.stderr`` is looked up at each line).

    Dagster captures a run's output: for the run it points file descriptor 2 into the run's compute log
    and mirrors it back to the terminal through a separate process, which can drop the last lines when
    the run ends (one run in ~30 under load lost its last step's line). Written to a duplicate of the
    descriptor taken before the run starts, the lines go straight to the terminal and no line is lost.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if fd not in _TERMINALS:  # one duplicate per process and descriptor, however many runs it makes
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        try:
            copy = os.dup(fd)
        except OSError:  # no descriptor to spare: the lines go through the capture after all
            return None
        _TERMINALS[fd] = os.fdopen(copy, "w", buffering=1, encoding=encoding, errors="backslashreplace")
    return _TERMINALS[fd]


_TERMINALS: dict[int, Any] = {}


def _first_line(text: str) -> str:
    """The message's first line without the exception's class name (``dagster...Failure: ``)."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    head, sep, rest = line.partition(": ")
    return rest if sep and head.replace(".", "").replace("_", "").isalnum() else line


@dg.logger(
    config_schema={"total": dg.Field(int, default_value=0, description="steps in the job, for [n/total]")},
    description="One line per step on stderr (the command line's progress display).",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """A logger whose only handler is :class:`StepLines`; not propagated, so nothing else prints it."""
    log = logging.getLogger(f"event_pipeline.progress.{id(init_context)}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers = [StepLines(init_context.logger_config["total"])]
    return log


def with_progress(job: dg.JobDefinition) -> dg.JobDefinition:
    """``job`` with the progress logger next to Dagster's console logger; which one runs is run config's choice."""
    return job.with_logger_defs({**job.loggers, LOGGER_NAME: progress_logger})


def logger_config(job: dg.JobDefinition, verbose: bool) -> dict[str, Any]:
    """The ``loggers`` run config: Dagster's console logger at DEBUG (``--verbose``), else the progress lines."""
    if verbose:
        return {"console": {"config": {"log_level": "DEBUG"}}}
    return {LOGGER_NAME: {"config": {"total": len(job.graph.nodes)}}}
