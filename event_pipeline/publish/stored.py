"""What an imported event holds in the database, counted by SQL: the figures the asset checks compare."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.model.catalog import LINKS, MODELS
from event_pipeline.model.schema import LINK_TABLES, TABLES
from event_pipeline.plan.diff import count_links, count_rows


def foreign_rows(conn: Connection, event_id: int) -> dict[str, int]:
    """Per reference (``sessions.track_id`` ...) and link table: rows of the event that point into
    another event (0 everywhere for a sound import)."""
    found: dict[str, int] = {}
    for spec in MODELS[1:]:
        table = TABLES[spec.name]
        for ref in spec.fk_refs:
            target = TABLES[ref.target].alias("target")
            query = (
                sa.select(sa.func.count())
                .select_from(table.join(target, table.c[ref.fk_column] == target.c.id))
                .where(table.c.event_id == event_id, target.c.event_id != event_id)
            )
            found[f"{spec.table}.{ref.column}"] = conn.execute(query).scalar_one()
    for link in LINKS:
        table = LINK_TABLES[link.table]
        owners, members = TABLES[link.owner], TABLES[link.member]
        joined = table.join(owners, table.c[link.owner_column] == owners.c.id).join(
            members, table.c[link.member_column] == members.c.id
        )
        # One side in the event, the other not: two counts, each starting from the event's own rows (its
        # event_id index), where one condition with OR scanned the whole link table, every event's links.
        found[link.table] = sum(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(joined)
                .where(inside.c.event_id == event_id, outside.c.event_id != event_id)
            ).scalar_one()
            for inside, outside in ((owners, members), (members, owners))
        )
    return found


def stored_counts(conn: Connection, event_id: int) -> dict[str, int]:
    """Rows of the event in every table, as the result JSON counts them: ``{table: rows}``."""
    counts = {spec.table: count_rows(conn, spec, event_id) for spec in MODELS}
    for link in LINKS:
        counts[link.table] = count_links(conn, link, event_id)
    return counts
