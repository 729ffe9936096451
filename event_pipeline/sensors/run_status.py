"""Run-status sensors: every import run ends with a closed ``import_jobs`` row and a notification.

A run that fails or is canceled outside the import's own error handling
(terminated from the UI, a crashed worker, a resource that failed to start)
would leave its row RUNNING; these sensors close it as FAILURE. When a run
worker is killed outright, the code server that started it usually reports
the run failed; if that server is gone too (daemon restarted, machine
rebooted), the run would stay STARTED forever, so ``interrupted_imports_sensor``
finds such runs by the process id their row recorded and fails them, which
then notifies.
"""

import logging
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline import notify
from event_pipeline.assets.archive import configured_path
from event_pipeline.assets.common import KEY_TAG
from event_pipeline.assets.job import import_job
from event_pipeline.assets.selection import is_import_run
from event_pipeline.bulk import BULK_JOB_NAME
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource
from event_pipeline.sensors.common import USER_TAG, interval_seconds

PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = "dagster/will_retry"
BULK_UNFINISHED = "the bulk run ended before this archive's import finished"
NOT_PUBLISHED = "the run ended without importing: import_result was not part of it"
CANCELED = "canceled: the run was terminated"


def _notify(
    notification: notify.Notification, run: dg.DagsterRun, logger: logging.Logger | Any, ops: bool = True
) -> None:
    """Send to the configured recipients (unless ``ops`` is false), and to the user who uploaded the
    archive through the API (the run's user tag, an email address), in a message of their own."""
    if ops:
        notify.send(notification, logger)
    user = run.tags.get(USER_TAG)
    if user and "@" in user and notify.smtp_configured():
        notify.send(notification, logger, to=[user])


def run_key(run: dg.DagsterRun) -> str | None:
    return run.tags.get(KEY_TAG) or run.tags.get(PARTITION_TAG)


def run_path(run: dg.DagsterRun) -> str | None:
    """The archive the run was asked to import, if its config names one."""
    return configured_path(run.run_config)


def on_success(engine: Engine, run: dg.DagsterRun, logger: logging.Logger | Any) -> notify.Notification | None:
    """Notify a completed import; close the row of a run that never reached the import.

    Any run of the instance comes here (every code location, the CLI's in-process runs
    included); a run without an ``import_jobs`` row imported nothing and is ignored.
    """
    if run.job_name == BULK_JOB_NAME:
        notify_bulk(engine, run, logger)
        return None
    job = import_log.get_job(engine, run.run_id)
    if job is None:
        return None  # e.g. a run of asset checks only: no import was attempted
    if job["state"] == "RUNNING":
        import_log.close_unfinished(engine, key=job["key"], run_id=run.run_id, error=NOT_PUBLISHED)
        logger.info(f"{job['key']}: {NOT_PUBLISHED}")
        return None
    if job["state"] != "SUCCESS":
        return None
    message = notify.success_message(job)
    if _unchanged(job):  # the uploader asked for this import and still hears how it went
        logger.info(f"{job['key']}: archive unchanged since the last import; only its uploader (if any) is notified")
        _notify(message, run, logger, ops=False)
        return None
    _notify(message, run, logger)
    return message


def notify_bulk(engine: Engine, run: dg.DagsterRun, logger: logging.Logger | Any) -> int:
    """One notification per archive of an ended bulk run (one run, many ``import_jobs`` rows); how many were sent
    or logged. An import the run left RUNNING is closed as FAILURE first."""
    sent = 0
    for job in import_log.jobs_of_bulk_run(engine, run.run_id):
        if job["state"] == "RUNNING":
            job = import_log.close_unfinished(engine, key=job["key"], run_id=job["run_id"], error=BULK_UNFINISHED)
        if job["state"] == "SUCCESS" and _unchanged(job):
            continue
        ok = job["state"] == "SUCCESS"
        notify.send(notify.success_message(job) if ok else notify.failure_message(job), logger)
        sent += 1
    return sent


def _unchanged(job: dict[str, Any]) -> bool:
    diff = job.get("diff") or {}
    links = diff.get("links") or {}
    return not any(diff.get(k) for k in ("created", "updated", "deleted")) and not any(links.values())


def on_failure(
    engine: Engine, run: dg.DagsterRun, message: str, logger: logging.Logger | Any, *, canceled: bool = False
) -> notify.Notification | None:
    """Close the run's row as FAILURE (keeping the import's own error list) and notify."""
    if run.job_name == BULK_JOB_NAME:
        notify_bulk(engine, run, logger)
        return None
    key = run_key(run)
    current = import_log.get_job(engine, run.run_id)
    # Only imports: the import job, or a run (e.g. the UI's asset job) that selected the whole import or
    # opened a row; not a report, a check-only run, or a refused partial selection.
    if key is None or (current is None and not is_import_run(run, import_job.name)):
        return None
    dead = current and current["state"] == "RUNNING" and not import_log.process_alive(current["host"], current["pid"])
    if dead and not canceled:
        message = import_log.INTERRUPTED  # the worker died (Dagster's message only says "failed from outside")
    job = import_log.close_unfinished(engine, key=key, run_id=run.run_id, error=message, path=run_path(run))
    if job.get("state") == "SUCCESS":  # the data was committed; a step after that failed
        after = f"the event was imported, but the run failed afterwards: {message}"
        job = {**job, "errors": [{"file": None, "record_id": None, "field": None, "message": after}]}
    if run.tags.get(WILL_RETRY_TAG) == "true":
        logger.info(f"{key}: run {run.run_id} failed and will be retried: {job.get('error')}")
        return None
    notification = notify.failure_message(job, import_log.event_name(engine, key))
    _notify(notification, run, logger)
    return notification


def _failure_text(context: dg.RunStatusSensorContext, fallback: str) -> str:
    event = context.dagster_event
    text = (event.message if event else None) or fallback
    return text.strip().splitlines()[0] if text.strip() else fallback


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="import_succeeded_sensor",
    monitor_all_code_locations=True,  # the UI's asset jobs, the CLI's in-process runs, bulk runs
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notifies a completed import (email or log line).",
)
def import_succeeded_sensor(context: dg.RunStatusSensorContext, database: DatabaseResource):
    on_success(database.engine(), context.dagster_run, context.log)


@dg.run_failure_sensor(
    name="import_failed_sensor",
    monitor_all_code_locations=True,  # the UI's asset jobs, the CLI's in-process runs, bulk runs
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a failed import run's import_jobs row FAILURE and notifies, with every error.",
)
def import_failed_sensor(context: dg.RunFailureSensorContext, database: DatabaseResource):
    on_failure(database.engine(), context.dagster_run, _failure_text(context, "the run failed"), context.log)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="import_canceled_sensor",
    monitor_all_code_locations=True,  # the UI's asset jobs, the CLI's in-process runs, bulk runs
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a canceled (terminated) import run's import_jobs row FAILURE and notifies.",
)
def import_canceled_sensor(context: dg.RunStatusSensorContext, database: DatabaseResource):
    on_failure(database.engine(), context.dagster_run, CANCELED, context.log, canceled=True)


IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def sweep_interrupted(instance: dg.DagsterInstance, engine: Engine) -> list[str]:
    """Fail in-progress import runs whose importing process is gone (same host only); their ids."""
    failed = []
    for run in instance.get_runs(dg.RunsFilter(job_name=import_job.name, statuses=IN_PROGRESS)):
        job = import_log.get_job(engine, run.run_id)
        if not job or job["state"] != "RUNNING" or import_log.process_alive(job["host"], job["pid"]):
            continue
        import_log.mark_interrupted(engine, key=job["key"], run_id=run.run_id)
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, import_log.INTERRUPTED)
        else:
            instance.report_run_failed(run, import_log.INTERRUPTED)
        failed.append(run.run_id)
    return failed


@dg.sensor(
    name="interrupted_imports_sensor",
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails import runs whose worker process died (kill -9, OOM), so they do not stay running forever.",
)
def interrupted_imports_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    failed = sweep_interrupted(context.instance, database.engine())
    for run_id in failed:
        context.log.warning(f"run {run_id}: {import_log.INTERRUPTED}")
    return dg.SkipReason(f"failed {len(failed)} interrupted run(s)" if failed else "no interrupted run")
