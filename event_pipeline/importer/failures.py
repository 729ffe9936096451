"""The one failure path of an import, whatever runs it: the run's ``import_jobs`` row closed as FAILURE."""

from __future__ import annotations

import contextlib

from sqlalchemy.engine import Engine

from event_pipeline.problems import ImportFailed, Problem, first_line
from event_pipeline.publish import import_log
from event_pipeline.redact import mask


def record_failure(engine: Engine, key: str, run_id: str, exc: BaseException) -> None:
    """Close run ``run_id``'s row as FAILURE with the error.

    An :class:`ImportFailed` keeps every problem; any other exception is one
    problem, its first line with passwords masked, recorded if the database
    still takes it (it may be what failed: the run-failure sensor or the CLI
    closes the row later then).
    """
    if isinstance(exc, ImportFailed):
        import_log.record_failure(
            engine, key=key, run_id=run_id, error=str(exc), errors=exc.errors, warnings=exc.warnings
        )
        return
    problem = Problem(None, None, None, mask(f"{type(exc).__name__}: {first_line(exc)}"))
    with contextlib.suppress(Exception):
        import_log.record_failure(engine, key=key, run_id=run_id, error=str(problem), errors=[problem], warnings=[])


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a stop of the process (SIGINT/SIGTERM: Dagster's
    ``DagsterExecutionInterruptedError`` or a ``KeyboardInterrupt``, neither an ``Exception``). A signal that
    lands in the middle of a query leaves the connection busy, and closing it then raises a driver error
    (psycopg: "can't change 'autocommit' now") whose ``__context__`` is the stop: the import was
    interrupted, and is reported so, not as that error."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if not isinstance(current, Exception):
            return True
        pending += [current.__cause__, current.__context__]
    return False
