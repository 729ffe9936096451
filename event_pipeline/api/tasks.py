"""A task (one import run) as the reference server's task URL shows it: its state, then its result.

While the run waits or starts, ``state`` is Dagster's: ``QUEUED``,
``STARTING``, ``STARTED``. While it runs, the step it is in, from the run's
own step events: ``Reading the archive``, ``Importing <model> (<n>/9)`` for
the nine model steps in the reference server's order (its task said
``Importing sessions (n/N)``), ``Storing media``, ``Writing the event``.
Once the import has closed its ``import_jobs`` row (or the run has ended),
the row decides, as for the command line: ``SUCCESS`` with the very JSON
``event-pipeline import`` prints, or ``FAILURE`` with ``result.error`` and
every error the row kept (and ``retried_as``, the retry's task URL, when
Dagster retried a run whose worker died).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline.model.catalog import MODELS
from event_pipeline.problems import Problem
from event_pipeline.publish import import_log, result
from event_pipeline.sensors.run_status import CANCELED, NOT_PUBLISHED

MODEL_STEPS = {spec.name: f"Importing {spec.name} ({i}/{len(MODELS)})" for i, spec in enumerate(MODELS, 1)}
STEP_STATES = {
    "archive": "Reading the archive",
    **MODEL_STEPS,
    "media": "Storing media",
    "import_result": "Writing the event",
}
WAITING = {
    dg.DagsterRunStatus.QUEUED: "QUEUED",
    dg.DagsterRunStatus.NOT_STARTED: "QUEUED",
    dg.DagsterRunStatus.STARTING: "STARTING",
    dg.DagsterRunStatus.CANCELING: "CANCELING",
}
ENDED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def task_url(run_id: str) -> str:
    return f"/v1/tasks/{run_id}"


def progress(instance: dg.DagsterInstance, run_id: str) -> str:
    """The running run's state: the step it last started (STARTED before the first)."""
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    if not starts:
        return "STARTED"
    step = starts[-1].step_key or ""
    return STEP_STATES.get(step, "Checking the imported event")  # the asset checks after the commit


def _run_failure_text(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why the run ended without a closed row: as the run-status sensor will record it."""
    if run.status == dg.DagsterRunStatus.CANCELED:
        return CANCELED
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return NOT_PUBLISHED
    failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    text = (failures[-1].message if failures else "") or ""
    return text.strip().splitlines()[0] if text.strip() else "the run failed"


def failure_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """FAILURE with ``result.error`` (the reference's shape) and every error and warning the row kept."""
    errors, warnings = result.from_job(row)
    out = result.failure(errors, warnings, row["key"])
    out.pop("notice", None)  # the lists below are whole, as import_jobs kept them
    out["errors"] = [p.as_dict() for p in errors]
    out["warnings"] = [p.as_dict() for p in warnings]
    return {**out, "result": {"error": out["error"]}}


def _published(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any] | None:
    """The ``import_result`` step's materialization metadata once it has succeeded (None before)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None and materialization.asset_key == dg.AssetKey("import_result"):
            return dict(materialization.metadata)
    return None


def _settled(
    instance: dg.DagsterInstance, engine: Engine, run: dg.DagsterRun, row: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The result once the row is closed: SUCCESS once the import committed and its step ended (the
    asset checks that follow cannot undo it), FAILURE as soon as the import recorded its errors. None
    before.

    The SUCCESS is what the command line prints: the row's result, plus the media summary that only
    the step's output holds (it is in the step's materialization metadata).
    """
    if row and row["state"] == "SUCCESS":
        published = _published(instance, run.run_id)
        if published is None and run.status not in ENDED:
            return None  # committed a moment ago; the step is finishing
        media = published.get("media") if published else None
        extra = {"media": media.value} if isinstance(media, dg.JsonMetadataValue) else {}
        return {**result.success_from_row(engine, row, force=_forced(run)), **extra}
    if row and row["state"] == "FAILURE" and row.get("errors"):
        return failure_from_row(row)
    return None


def _ended(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, Any]:
    # Ended without closing its row (canceled, crashed before the import began): the sensor closes
    # it with this same text; until then it is told from the run.
    reason = _run_failure_text(instance, run)
    key = run.tags.get("event_pipeline/key")
    out = result.failure([Problem(None, None, None, reason)], [], key)
    return {**out, "result": {"error": out["error"]}}


def _forced(run: dg.DagsterRun) -> bool:
    try:
        config: Any = run.run_config
        return bool(config["ops"]["archive"]["config"].get("force"))
    except (KeyError, TypeError, AttributeError):
        return False


def task(instance: dg.DagsterInstance, engine: Engine, run: dg.DagsterRun) -> dict[str, Any]:
    """The task's JSON: ``task_id``, ``state``, and once ended, the result (see the module's docstring)."""
    head = {"task_id": run.run_id, "task_url": task_url(run.run_id)}
    row = None if run.status in WAITING else import_log.get_job(engine, run.run_id)
    settled = _settled(instance, engine, run, row)
    if settled is None and run.status in ENDED:
        settled = _ended(instance, run)
    if settled is not None:
        return {**head, **settled, **_retry(instance, run, settled)}
    state = WAITING.get(run.status) or progress(instance, run.run_id)
    return {**head, "state": state, "key": run.tags.get("event_pipeline/key")}


def _retry(instance: dg.DagsterInstance, run: dg.DagsterRun, outcome: dict[str, Any]) -> dict[str, Any]:
    """A failed run whose worker died is retried by Dagster as a new run (``run_retries``, with the
    same tags, so the same owner): point the failed task at it."""
    if outcome.get("state") != "FAILURE":
        return {}
    retries = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}), limit=1)
    return {"retried_as": task_url(retries[0].run_id)} if retries else {}


def summary(record: dg.RunRecord, row: dict[str, Any] | None) -> dict[str, Any]:
    """One line of the user's import list: the run, with its ``import_jobs`` row's facts once it has one."""
    run = record.dagster_run
    state = row["state"] if row else WAITING.get(run.status, run.status.value)
    if row and row["state"] == "RUNNING" and run.status in ENDED:
        state = "FAILURE"  # ended without closing its row; the run-status sensor is about to
    return {
        "task_id": run.run_id,
        "task_url": task_url(run.run_id),
        "key": run.tags.get("event_pipeline/key"),
        "state": state,
        "submitted_at": record.create_timestamp.isoformat(),
        "started_at": _utc_text(row.get("started_at") if row else None),
        "finished_at": _utc_text(row.get("finished_at") if row else None),
        "event_id": row.get("event_id") if row else None,
        "archive_sha256": row.get("archive_sha256") if row else None,
        "error": row.get("error") if row else None,
    }


def _utc_text(moment: Any) -> str | None:
    """An ``import_jobs`` time as ISO 8601 with its offset: every stored time is UTC, and SQLite gives it
    back without the zone."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
