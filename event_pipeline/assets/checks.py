"""Asset checks on ``import_result``: cheap SQL over the imported event, so the UI shows the data can be trusted."""

import dagster as dg

from event_pipeline.assets.result import import_result
from event_pipeline.publish import import_log
from event_pipeline.publish.stored import foreign_rows, stored_counts
from event_pipeline.resources import DatabaseResource


def _imported(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dict | None:
    """This run's SUCCESS row of ``import_jobs`` (event id, counts); read from the database, not
    the IO manager, so a check never depends on how outputs are stored."""
    job = import_log.get_job(database.engine(), context.run.run_id)
    return job if job and job["state"] == "SUCCESS" and job.get("event_id") is not None else None


def _not_imported() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="this run did not import the event")


@dg.asset_check(asset=import_result, description="Every reference stays inside its event.")
def references_stay_in_event(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
    """A session's track, room or type (and its speakers) must belong to the session's own event."""
    job = _imported(context, database)
    if job is None:
        return _not_imported()
    with database.engine().connect() as conn:
        found = foreign_rows(conn, job["event_id"])
    bad = {name: n for name, n in found.items() if n}
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"checked": dg.MetadataValue.json(sorted(found)), "foreign": dg.MetadataValue.json(bad)},
        description=None if not bad else f"rows pointing into another event: {bad}",
    )


@dg.asset_check(asset=import_result, description="Stored rows match the archive's counts.")
def row_counts_match_archive(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
    """The event's rows in the database, table by table, equal what the archive held."""
    job = _imported(context, database)
    if job is None:
        return _not_imported()
    expected = job.get("counts") or {}
    with database.engine().connect() as conn:
        actual = stored_counts(conn, job["event_id"])
    diff = {t: {"archive": expected.get(t), "database": n} for t, n in actual.items() if expected.get(t) != n}
    return dg.AssetCheckResult(
        passed=not diff,
        metadata={"counts": dg.MetadataValue.json(actual), "mismatches": dg.MetadataValue.json(diff)},
        description=None if not diff else f"counts differ: {diff}",
    )


CHECKS = [references_stay_in_event, row_counts_match_archive]
