"""Asset checks on ``import_result``: cheap SQL over the imported event, so the UI shows the data can be trusted.

A check evaluates a partition's data, not a run: the event the database holds for
the archive key, against that key's last committed import (its ``import_jobs``
row). So it gives the same answer in the import's own run and when executed alone
from the check's "Execute" button, for one partition (the run's
``dagster/partition`` tag) or, without one, for every imported archive.
"""

import dagster as dg

from event_pipeline.assets.common import PARTITION_TAG
from event_pipeline.assets.result import import_result
from event_pipeline.publish import import_log
from event_pipeline.publish.stored import foreign_rows, stored_counts
from event_pipeline.resources import DatabaseResource


def _imports(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dict[str, dict]:
    """Archive key -> its last SUCCESS ``import_jobs`` row whose event still exists: the run's partition's,
    or every key's when the run has no partition."""
    key = context.run.tags.get(PARTITION_TAG)
    return import_log.last_successes(database.engine(), key)


def _nothing(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    key = context.run.tags.get(PARTITION_TAG)
    what = f"archive {key!r} has" if key else "no archive has"
    # Nothing imported is nothing wrong: a warning, so a fresh partition does not turn the asset red.
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, description=f"{what} no committed import to check"
    )


@dg.asset_check(asset=import_result, description="Every reference stays inside its event.")
def references_stay_in_event(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
    """A session's track, room or type (and its speakers) must belong to the session's own event."""
    jobs = _imports(context, database)
    if not jobs:
        return _nothing(context)
    bad: dict[str, dict[str, int]] = {}
    checked: list[str] = []
    with database.engine().connect() as conn:
        for key, job in sorted(jobs.items()):
            found = foreign_rows(conn, job["event_id"])
            checked = sorted(found)
            if any(found.values()):
                bad[key] = {name: n for name, n in found.items() if n}
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={
            "archives": dg.MetadataValue.json(sorted(jobs)),
            "checked": dg.MetadataValue.json(checked),
            "foreign": dg.MetadataValue.json(bad),
        },
        description=None if not bad else f"rows pointing into another event: {bad}",
    )


@dg.asset_check(asset=import_result, description="Stored rows match the archive's counts.")
def row_counts_match_archive(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
    """The event's rows in the database, table by table, equal what the archive held at its last import."""
    jobs = _imports(context, database)
    if not jobs:
        return _nothing(context)
    diff: dict[str, dict] = {}
    counts: dict[str, dict[str, int]] = {}
    with database.engine().connect() as conn:
        for key, job in sorted(jobs.items()):
            expected = job.get("counts") or {}
            counts[key] = actual = stored_counts(conn, job["event_id"])
            mismatch = {
                t: {"archive": expected.get(t), "database": n} for t, n in actual.items() if expected.get(t) != n
            }
            if mismatch:
                diff[key] = mismatch
    return dg.AssetCheckResult(
        passed=not diff,
        metadata={"counts": dg.MetadataValue.json(counts), "mismatches": dg.MetadataValue.json(diff)},
        description=None if not diff else f"counts differ: {diff}",
    )


CHECKS = [references_stay_in_event, row_counts_match_archive]
