"""Writing the plans: one transaction, bulk statements, nothing per row.

Inserts and updates go in the reference import order (parents before the
rows that point at them), then link changes, then deletions in reverse
order. On PostgreSQL new rows go in with ``COPY`` (on the transaction's own
connection), several times faster than ``executemany``, which sends one
INSERT per row; SQLite gets ``executemany``. The event's revision is moved
on with a guarded UPDATE, so a plan computed against an older state of the
event (a concurrent import of the same key) fails instead of overwriting
newer data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.db import json_text
from event_pipeline.model.catalog import LINKS, MODELS, Link, ModelSpec
from event_pipeline.model.schema import LINK_TABLES, TABLES, events
from event_pipeline.plan.diff import INSERT, UPDATE, ModelPlan

CHUNK = 5_000


class ConcurrentImport(RuntimeError):
    pass


def _chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter); nothing for no items."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _insert(conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]], now: datetime) -> None:
    stamps = {"created_at": now, "updated_at": now}
    if conn.dialect.name == "postgresql":
        first = next(iter_rows := iter(rows), None)
        if first is not None:  # no COPY for no rows
            _copy(conn, table, itertools.chain([first], iter_rows), stamps)
        return
    for chunk in _chunks(rows):
        conn.execute(table.insert(), [row | stamps for row in chunk])


def _copy(conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]], fixed: dict[str, Any]) -> None:
    """``COPY table FROM STDIN`` inside the caller's transaction. JSON columns are serialised here as the
    engines do (:func:`~event_pipeline.db.json_text`); a key a row lacks is NULL, as in an INSERT that leaves it out."""
    columns = [c.name for c in table.columns]
    json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON) and c.name not in fixed]
    fixed_at = [(i, fixed[c]) for i, c in enumerate(columns) if c in fixed]
    listed = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({listed}) FROM STDIN'
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        driver = conn.connection.driver_connection
        assert driver is not None  # a live connection inside the import's transaction
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            _write_rows(copy, rows, columns, fixed_at, json_at, json_text)
    except dbapi_error as exc:
        # The driver's own error, as SQLAlchemy would raise it (IntegrityError for a duplicate key...),
        # so callers handle COPY like any other statement.
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi_error) from exc


def _write_rows(
    copy: Any,
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    fixed_at: list[tuple[int, Any]],
    json_at: list[int],
    dumps: Callable[[Any], str],
) -> None:
    for row in rows:
        get = row.get
        values = [get(c) for c in columns]
        for i, value in fixed_at:
            values[i] = value
        for i in json_at:
            if values[i] is not None:
                values[i] = dumps(values[i])
        copy.write_row(values)


def _update(conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]], now: datetime) -> None:
    chunks = _chunks(rows)
    first = next(chunks, None)
    if first is None:
        return
    columns = [c for c in first[0] if c != "id"]
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam("_id"))
        .values({c: sa.bindparam(f"_{c}") for c in [*columns, "updated_at"]})
    )
    for chunk in itertools.chain([first], chunks):
        params = [{f"_{k}": v for k, v in row.items()} | {"_updated_at": now} for row in chunk]
        conn.execute(statement, params)


def _delete(conn: Connection, table: sa.Table, ids: list[int]) -> None:
    for chunk in _chunks(ids):
        conn.execute(table.delete().where(table.c.id.in_(chunk)))


def _bump_revision(conn: Connection, plan: ModelPlan, sha256: str) -> None:
    moved = conn.execute(
        events.update()
        .where(events.c.id == plan.event_id, events.c.revision == plan.expected_revision)
        .values(revision=events.c.revision + 1, archive_sha256=sha256)
    ).rowcount
    if moved != 1:
        raise ConcurrentImport(
            f"event {plan.event_id} changed while this import was being prepared (another import of the same key?); "
            "run the import again"
        )


def publish(
    conn: Connection,
    plans: dict[str, ModelPlan],
    sha256: str,
    rows: Callable[[ModelSpec, int], Iterable[dict[str, Any]]],
    before_commit: Callable[[Connection], None] | None = None,
) -> None:
    """Apply every plan on ``conn``, inside the caller's transaction. ``rows(spec, kind)`` gives the rows a
    model's plan inserts (``kind`` INSERT) or updates (UPDATE), built as they are written
    (:func:`~event_pipeline.plan.diff.planned_rows`)."""
    now = datetime.now(UTC)
    event_plan = plans["event"]
    for spec in MODELS:
        table = TABLES[spec.name]
        _insert(conn, table, rows(spec, INSERT), now)
        _update(conn, table, rows(spec, UPDATE), now)
        if spec.name == "event":
            _bump_revision(conn, event_plan, sha256)
    for link in LINKS:
        _write_link(conn, link, plans)
    for spec in reversed(MODELS[1:]):
        _delete(conn, TABLES[spec.name], plans[spec.name].delete_ids)
    if before_commit:
        before_commit(conn)


def _write_link(conn: Connection, link: Link, plans: dict[str, ModelPlan]) -> None:
    """The owner's plan of ``link``: rows removed, rows added (COPY on PostgreSQL), and the rows of
    deleted owners and members dropped before those are."""
    table, plan = LINK_TABLES[link.table], plans[link.owner]
    owner, member = table.c[link.owner_column], table.c[link.member_column]
    for chunk in _chunks(plan.links_remove):
        conn.execute(table.delete().where(sa.tuple_(owner, member).in_(chunk)))
    # Built as they are written: 200 000 links held as dicts at once were 37 MiB of the import's peak.
    rows = ({link.owner_column: a, link.member_column: b} for a, b in plan.links_add)
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows, {})
    else:
        for chunk in _chunks(rows):
            conn.execute(table.insert(), chunk)
    for model, column in ((link.owner, owner), (link.member, member)):
        for chunk in _chunks(plans[model].delete_ids):
            conn.execute(table.delete().where(column.in_(chunk)))
