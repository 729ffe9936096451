"""The planner's statistics of the tables an import changed much, refreshed after its commit (PostgreSQL).

Right after a bulk load PostgreSQL knows nothing of the new rows until autovacuum's ANALYZE comes round
(a minute or more later, never where autovacuum is off): it takes 100 000 sessions of one event for ~300,
and plans the asset checks and the next import's reads as nested loops over them (the check for links
into another event: 0.5 s at 100 000 sessions, 15 ms once analysed). The PostgreSQL manual advises
running ANALYZE after populating a table ("Populating a Database", 14.4.9).

A table is analysed when the import changed more of its rows than autovacuum waits for by default (50 +
10% of the rows it last counted: ``autovacuum_analyze_threshold`` and ``autovacuum_analyze_scale_factor``),
and only in the columns the project's own queries filter and join on (``id``, ``event_id``; both columns
of a link table): the wide text columns were most of the cost (sessions at 100 000: 0.65 s for every
column, 0.11 s for these).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from event_pipeline.model.catalog import LINKS, MODELS
from event_pipeline.model.schema import LINK_TABLES, TABLES
from event_pipeline.plan.diff import ModelPlan

log = logging.getLogger(__name__)

THRESHOLD = 50  # PostgreSQL's autovacuum_analyze_threshold default
SCALE_FACTOR = 0.1  # PostgreSQL's autovacuum_analyze_scale_factor default
LOCK_TIMEOUT_MS = 2_000  # how long an ANALYZE waits for its table's lock before it is left to autovacuum


def changed_rows(plans: dict[str, ModelPlan]) -> dict[sa.Table, int]:
    """Rows each table gained, lost or rewrote in the import of ``plans``: ``{table: rows}``."""
    changed = {TABLES[spec.name]: (p := plans[spec.name]).created + p.updated + len(p.delete_ids) for spec in MODELS}
    for link in LINKS:
        plan = plans[link.owner]
        changed[LINK_TABLES[link.table]] = len(plan.links_add) + len(plan.links_remove)
    return changed


def refresh(engine: Engine, plans: dict[str, ModelPlan]) -> list[str]:
    """ANALYZE (in its key columns) each table the committed import of ``plans`` changed beyond the threshold;
    returns the tables analysed. PostgreSQL only (SQLite plans these queries well without statistics).

    Best effort, after the commit: an error (the table's lock not granted within ``LOCK_TIMEOUT_MS``) is
    logged and leaves the statistics to autovacuum (a role that does not own the table gets PostgreSQL's
    warning, not an error); it never fails an import that has committed."""
    if engine.dialect.name != "postgresql":
        return []
    changed = {table: n for table, n in changed_rows(plans).items() if n > THRESHOLD}
    if not changed:
        return []
    analysed: list[str] = []
    try:
        with engine.connect() as conn:
            known: dict[str, float] = dict(
                conn.execute(
                    sa.text("SELECT relname, reltuples FROM pg_class WHERE oid = ANY(CAST(:oids AS regclass[]))"),
                    {"oids": sorted(table.name for table in changed)},
                ).all()
            )
            for table, n in changed.items():
                if n <= THRESHOLD + SCALE_FACTOR * max(known.get(table.name, 0), 0):  # -1: never analysed
                    continue
                columns = ", ".join(f'"{c}"' for c in _key_columns(table))
                # Never queued for long behind another session's VACUUM or ANALYZE of the table: skipped instead.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                conn.exec_driver_sql(f'ANALYZE "{table.name}" ({columns})')
                conn.commit()
                analysed.append(table.name)
    except sa.exc.SQLAlchemyError as exc:
        left = ", ".join(t.name for t in changed if t.name not in analysed)
        log.warning("statistics of %s not refreshed (autovacuum will): %s", left, exc)
    return analysed


def _key_columns(table: sa.Table) -> list[str]:
    """The columns the project's queries filter and join ``table`` on."""
    if table.name in LINK_TABLES:
        return list(table.columns.keys())
    return [name for name in ("id", "event_id") if name in table.columns]
