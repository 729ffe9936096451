"""Asset checks on ``import_result``: cheap SQL over the imported event, so the UI shows the data can be trusted."""

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.assets.result import import_result
from event_pipeline.model.catalog import EVENT, LINK_TABLE, MODELS
from event_pipeline.model.schema import TABLES, session_speakers
from event_pipeline.plan.diff import count_links
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource


def foreign_rows(conn: Connection, event_id: int) -> dict[str, int]:
    """Per reference (``sessions.track_id`` ...): rows of the event that point into another event."""
    found: dict[str, int] = {}
    for spec in MODELS[1:]:
        table = TABLES[spec.name]
        for ref in spec.fk_refs:
            target = TABLES[ref.target].alias("target")
            query = (
                sa.select(sa.func.count())
                .select_from(table.join(target, table.c[ref.column] == target.c.id))
                .where(table.c.event_id == event_id, target.c.event_id != event_id)
            )
            found[f"{spec.table}.{ref.column}"] = conn.execute(query).scalar_one()
    sessions, speakers = TABLES["sessions"], TABLES["speakers"]
    links = (
        sa.select(sa.func.count())
        .select_from(
            session_speakers.join(sessions, session_speakers.c.session_id == sessions.c.id).join(
                speakers, session_speakers.c.speaker_id == speakers.c.id
            )
        )
        .where(sa.or_(sessions.c.event_id == event_id, speakers.c.event_id == event_id))
        .where(sessions.c.event_id != speakers.c.event_id)
    )
    found[LINK_TABLE] = conn.execute(links).scalar_one()
    return found


def stored_counts(conn: Connection, event_id: int) -> dict[str, int]:
    """Rows of the event in every table, as the result JSON counts them."""
    counts = {}
    for spec in MODELS:
        table = TABLES[spec.name]
        owner = table.c.id if spec is EVENT else table.c.event_id
        counts[spec.table] = conn.execute(sa.select(sa.func.count()).where(owner == event_id)).scalar_one()
    counts[LINK_TABLE] = count_links(conn, event_id)
    return counts


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
