"""What every import asset shares: the partitions, the group, the failure path (a job hook)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline import importer
from event_pipeline.assets.selection import missing_import_assets
from event_pipeline.intake import keys
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish import import_log, result

GROUP = "event_import"

# Run tags: the archive key (the queued run coordinator allows one run per
# value), and where an in-process run executes, to tell a killed one.
KEY_TAG = "event_pipeline/key"
HOST_TAG = "event_pipeline/host"
PID_TAG = "event_pipeline/pid"
PARTITION_TAG = "dagster/partition"

# One partition per archive key (the file name without .zip), so every
# archive has its own history in the UI.
ARCHIVES_NAME = "archives"
ARCHIVES = dg.DynamicPartitionsDefinition(name=ARCHIVES_NAME)


def record_failure(engine: Engine, key: str, run_id: str, exc: BaseException) -> None:
    """:func:`event_pipeline.importer.record_failure`, for a ``dg.Failure`` made from an
    :class:`ImportFailed` by :func:`reported` too (its problems are the cause's)."""
    cause = exc.__cause__ if isinstance(exc, dg.Failure) and isinstance(exc.__cause__, ImportFailed) else exc
    importer.record_failure(engine, key, run_id, cause)


@dg.failure_hook(required_resource_keys={"database"})
def record_import_failure(context: dg.HookContext) -> None:
    """A failed step of the import job closes its run's ``import_jobs`` row as FAILURE (:func:`record_failure`).

    Attached to every import asset (not to a job), so the UI's implicit asset job records
    failures as ``import_archive`` does. Left alone: a partial selection (refused, see
    :mod:`event_pipeline.assets.selection`), a row already SUCCESS (the import committed; what failed after it
    changes nothing), a run whose key breaks the key rule (refused before any row
    is made), and an interrupted step (SIGINT/SIGTERM, or an error raised while handling one:
    :func:`~event_pipeline.importer.failures.interrupted`): the CLI or the sweeper closes that row naming
    the signal. In every case the collector paused by
    validation is turned back on (:func:`event_pipeline.importer.release_frozen`).
    """
    importer.release_frozen()  # the import ends here: what validation froze is collectable again
    exc = context.op_exception
    if exc is None or importer.interrupted(exc):
        return
    run = context.instance.get_run_by_id(context.run_id)
    key = run.tags.get(PARTITION_TAG) if run else None
    if (
        run is None or not key or keys.key_error(key) or missing_import_assets(run)
    ):  # a refused partial selection records nothing
        return
    engine = context.resources.database.engine()
    try:
        row = import_log.get_job(engine, context.run_id)
    except Exception:  # the database may be what failed; the run-failure sensor or the CLI closes the row later
        context.log.warning(f"could not read the import_jobs row of run {context.run_id}")
        return
    if row is None or row["state"] != "SUCCESS":
        record_failure(engine, key, context.run_id, exc)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """An :class:`ImportFailed` leaves the step as a ``dg.Failure`` with its problems as metadata (bounded),
    not retried; the row is closed by :func:`record_import_failure`."""
    try:
        yield
    except ImportFailed as exc:
        raise failure(exc.errors, exc.warnings) from exc


def failure(errors: list[Problem], warnings: list[Problem]) -> dg.Failure:
    exc = ImportFailed(errors, warnings)
    listed = result.listed(errors, warnings)  # bounded: the run's event log is no place for a million problems
    return dg.Failure(
        description=str(exc),
        metadata={name: _metadata(value) for name, value in listed.items()},
        allow_retries=False,
    )


def _metadata(value: object) -> dg.MetadataValue:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.text(str(value))
