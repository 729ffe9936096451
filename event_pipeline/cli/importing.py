"""``event-pipeline import``: the import job run in this process on the real Dagster instance."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from event_pipeline import collector
from event_pipeline.cli.output import emit, failure, log
from event_pipeline.cli.signals import defer_stops, interrupted, received, settings_module
from event_pipeline.intake import keys
from event_pipeline.problems import Problem, first_line
from event_pipeline.redact import mask


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    import fcntl

    with open(home / ".event-importer.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def checked(path: str, key: str | None, url: str) -> tuple[Path, str | None, list[Problem]]:
    """The archive, its key (``--key`` or from the file name), and every reason they (or the
    database URL) cannot be used.

    Checked before anything is opened or built from them: a FIFO or a device
    is never read (it would block or never end), and a key that breaks the
    rule of :mod:`event_pipeline.intake.keys` comes back as None.
    """
    from event_pipeline.db import url_problem  # SQLAlchemy: imported once the signal handlers are in place

    archive = Path(path).expanduser().absolute()
    unusable = keys.file_problem(archive)
    if key is None:
        key = keys.key_from_name(archive.name)
    error = keys.key_error(key)
    problems = [Problem(archive.name or None, None, None, unusable)] if unusable else []
    problems += [Problem(None, None, "key", error)] if error else []
    bad_url = url_problem(url)
    problems += [Problem(None, None, "database_url", bad_url)] if bad_url else []
    return (archive if problems else archive.resolve()), None if error else key, problems


def run_import(path: str, key: str | None, force: bool, database_url: str | None, verbose: bool = False) -> int:
    """Run the import job in-process; print the result JSON and return the exit code (0: SUCCESS).

    stderr shows one line per step (:mod:`event_pipeline.progress`), or with ``verbose`` Dagster's own log.

    The archive must be a regular file and its key valid (else FAILURE before
    anything is written). After the job, :func:`_settle` decides what to
    print from what was committed.
    """
    with collector.startup_paused():  # until the job starts (_execute): start-up makes no garbage worth collecting
        settings = settings_module()
        url = settings.database_url(database_url)
        archive, key, refused = checked(path, key, url)
        if refused:
            return failure(refused, key)
        assert key is not None  # a key that breaks the rule is refused
        home = settings.dagster_home()
        os.environ["DAGSTER_HOME"] = str(home)  # the instance of this run, for Dagster and whatever it starts
        run_id = str(uuid.uuid4())  # known before the run starts, to find its row however it ends
        from event_pipeline.cli import sqlite_storage  # SQLAlchemy: imported once the signal handlers are in place

        # Dagster's SQLite storage opens a connection per event and query: see sqlite_storage.
        with sqlite_storage.kept_open(home):
            outcome, stopped = _execute(home, archive, key, run_id, force, url, verbose)
    return emit(_settle(url, run_id, key, archive, force, outcome, stopped))


def _execute(
    home: Path, archive: Path, key: str, run_id: str, force: bool, url: str, verbose: bool
) -> tuple[Any, BaseException | None]:
    """The import job's run on the home's instance: its result (None if it never ended), and what stopped it.

    An interruption before the run starts propagates (nothing was written);
    once it started, whatever ends it is returned for :func:`_settle`.
    """
    import dagster as dg

    from event_pipeline import progress
    from event_pipeline.assets.archive import import_run_config
    from event_pipeline.assets.common import ARCHIVES_NAME, HOST_TAG, KEY_TAG, PID_TAG
    from event_pipeline.import_definitions import IMPORT_JOB_NAME, import_defs
    from event_pipeline.intake import roots
    from event_pipeline.resources.database import run_scoped

    with _home_lock(home):
        # A fresh SQLite-backed home creates its tables on first use; two
        # imports starting at once must not both try.
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        if not instance.has_dynamic_partition(ARCHIVES_NAME, key):
            instance.add_dynamic_partitions(ARCHIVES_NAME, [key])
    outcome = None
    stopped: BaseException | None = None
    try:
        try:
            # Whoever runs the command can read the file anyway: the archive roots guard the
            # runs other entry points (the launchpad, the API) start, not this one.
            with instance, roots.unrestricted():
                job = progress.with_progress(import_defs.resolve_job_def(IMPORT_JOB_NAME))
                run_config = import_run_config(str(archive), force=force)
                collector.resume_after_startup()
                outcome = job.execute_in_process(
                    instance=instance,
                    partition_key=key,
                    run_id=run_id,
                    run_config=dg.RunConfig(ops=run_config.ops, loggers=progress.logger_config(job, verbose)),
                    # The URL goes to this run's resource object, not to run config or the environment:
                    # Dagster stores run config (and config defaults) in its run storage and shows them.
                    resources={"database": run_scoped(url)},
                    tags={
                        KEY_TAG: key,
                        HOST_TAG: socket.gethostname(),
                        PID_TAG: str(os.getpid()),
                        "event_pipeline/source": "cli",
                    },
                    raise_on_error=False,
                )
        finally:
            defer_stops()
    except BaseException as exc:  # noqa: BLE001 - SIGINT/SIGTERM included: the row must still be closed
        defer_stops()
        stopped = exc
    return outcome, stopped


def _settle(
    url: str, run_id: str, key: str, archive: Path, force: bool, outcome: Any, stopped: BaseException | None
) -> dict[str, Any]:
    """The result to print, from what the run committed; closes its row if it is still RUNNING.

    The job's own result when it succeeded; otherwise the ``import_jobs``
    row: SUCCESS (the import committed and something failed afterwards)
    gives the SUCCESS result rebuilt from the row, FAILURE its errors, and a
    row still RUNNING (or none) is closed as FAILURE with the reason.
    """
    from event_pipeline.db import get_engine
    from event_pipeline.publish import import_log, result

    if outcome is not None and outcome.success and stopped is None:
        with contextlib.suppress(Exception):
            return outcome.output_for_node("import_result")
    reason = mask(_reason(outcome, stopped))
    try:
        engine = get_engine(url)
        row = import_log.get_job(engine, run_id)
        if row and row["state"] == "SUCCESS":
            return result.success_from_row(engine, row, force)
        if not row or row["state"] != "FAILURE" or not row.get("errors"):
            row = import_log.close_unfinished(engine, key=key, run_id=run_id, error=reason, path=str(archive))
    except Exception as exc:  # the database itself may be what failed
        log.debug("could not read or close the import_jobs row", exc_info=True)
        note = f"{reason} (the run's import_jobs row could not be read: {type(exc).__name__}: {first_line(exc)})"
        return result.failure([Problem(None, None, None, mask(note))], key=key)
    errors, warnings = result.from_job(row)
    return result.failure(errors or [Problem(None, None, None, reason)], warnings, key)


def _reason(outcome: Any, stopped: BaseException | None) -> str:
    """Why the run did not end in a result: the signal, the exception, or the first failed step's error."""
    if isinstance(stopped, KeyboardInterrupt) or (stopped is None and received()):
        # A stop signal reached the run (Dagster's handlers turn it into a step failure, which may be an
        # error raised while handling it, such as a driver's on a connection the signal left busy).
        return interrupted("during the import")
    if stopped is not None:
        return f"{type(stopped).__name__}: {first_line(stopped)}"
    step_failures = [e for e in outcome.all_events if e.is_step_failure] if outcome is not None else []
    if not step_failures:
        return "import failed"
    error = step_failures[0].step_failure_data.error
    if error is not None and _innermost(error).cls_name == "DagsterExecutionInterruptedError":
        return interrupted("during the import")  # Dagster turns SIGINT/SIGTERM into this at a step
    return _root_cause(error)


def _innermost(error: Any) -> Any:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def _root_cause(error: Any) -> str:
    """The innermost error's first line: Dagster wraps the real one in its own."""
    if error is None:
        return "import failed"
    lines = _innermost(error).message.strip().splitlines()
    return lines[0] if lines else "import failed"
