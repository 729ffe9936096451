"""Reading one event's rows for an export, in bounded memory.

Model rows are read in chunks of :data:`CHUNK` ordered by id (keyset
pagination, the same on SQLite and PostgreSQL), each chunk with the links of
its rows; what references need of their targets (source id and the few
columns a reference object repeats, such as a track's name) is read once per
target model as small tuples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.model.catalog import Link, ModelSpec
from event_pipeline.model.schema import LINK_TABLES, TABLES, events

CHUNK = 2_000  # rows per query: a few MB at most, whatever the event's size


class ExportError(Exception):
    """The export cannot be made (no such event, an unwritable path); the message says why."""


def find_event(conn: Connection, key: str | None = None, event_id: int | None = None) -> dict[str, Any]:
    """The events row named by archive key or database id. Raises ExportError when there is none."""
    if (key is None) == (event_id is None):
        raise ExportError("name the event by archive key or by --event-id, not both")
    where = events.c.import_key == key if key is not None else events.c.id == event_id
    row = conn.execute(sa.select(events).where(where)).mappings().first()
    if row is None:
        what = f"archive key {key!r}" if key is not None else f"id {event_id}"
        raise ExportError(f"no event with {what} in this database")
    return dict(row)


def chunks(conn: Connection, spec: ModelSpec, event_id: int, size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    """The event's rows of one child model, ``size`` at a time, in id order (the archive's record order)."""
    table = TABLES[spec.name]
    last = None
    while True:
        query = sa.select(table).where(table.c.event_id == event_id).order_by(table.c.id).limit(size)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = [dict(r) for r in conn.execute(query).mappings()]
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def targets(conn: Connection, spec: ModelSpec, event_id: int, columns: set[str]) -> dict[int, dict[str, Any]]:
    """Database id -> ``source_id`` and ``columns`` (those a reference object repeats) of a model's rows;
    with ``extra`` only when a column asked for is none of the table's (then it is a field kept there)."""
    table = TABLES[spec.name]
    wanted = [table.c.id, table.c.source_id, *(table.c[c] for c in sorted(columns) if c in table.c)]
    if any(c not in table.c for c in columns):
        wanted.append(table.c.extra)
    owner = table.c[spec.owner_column]
    return {r["id"]: dict(r) for r in conn.execute(sa.select(*wanted).where(owner == event_id)).mappings()}


def linked(conn: Connection, link: Link, model: str, ids: list[int]) -> dict[int, list[int]]:
    """For a chunk of rows of ``model`` (one side of ``link``): each row's linked rows of the other side
    (a session's speakers, a speaker's sessions), in id order."""
    table = LINK_TABLES[link.table]
    own, other = (
        (table.c[link.owner_column], table.c[link.member_column])
        if model == link.owner
        else (table.c[link.member_column], table.c[link.owner_column])
    )
    out: dict[int, list[int]] = {}
    for a, b in conn.execute(sa.select(own, other).where(own.in_(ids)).order_by(own, other)):
        out.setdefault(a, []).append(b)
    return out


def pointing(conn: Connection, model: str, column: str, ids: list[int]) -> dict[int, list[int]]:
    """For a chunk of rows: the rows of ``model`` whose ``column`` names each (a track's sessions), in id order."""
    table = TABLES[model]
    out: dict[int, list[int]] = {}
    query = sa.select(table.c[column], table.c.id).where(table.c[column].in_(ids)).order_by(table.c.id)
    for owner, id_ in conn.execute(query):
        out.setdefault(owner, []).append(id_)
    return out
