"""Writing the plans: one transaction, bulk statements, nothing per row.

Inserts and updates go in the reference import order (parents before the
rows that point at them), then link changes, then deletions in reverse
order. The event's revision is moved on with a guarded UPDATE, so a plan
computed against an older state of the event (a concurrent import of the
same key) fails instead of overwriting newer data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.catalog import MODELS
from event_pipeline.plan import ModelPlan
from event_pipeline.schema import TABLES, events, session_speakers

CHUNK = 5_000


class ConcurrentImport(RuntimeError):
    pass


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], now: datetime) -> None:
    for chunk in _chunks(rows):
        conn.execute(table.insert(), [{**row, "created_at": now, "updated_at": now} for row in chunk])


def _update(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], now: datetime) -> None:
    if not rows:
        return
    columns = [c for c in rows[0] if c != "id"]
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam("_id"))
        .values({c: sa.bindparam(f"_{c}") for c in [*columns, "updated_at"]})
    )
    for chunk in _chunks(rows):
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
    before_commit: Callable[[Connection], None] | None = None,
) -> None:
    """Apply every plan on ``conn``, inside the caller's transaction."""
    now = datetime.now(UTC)
    event_plan = plans["event"]
    for spec in MODELS:
        plan = plans[spec.name]
        table = TABLES[spec.name]
        _insert(conn, table, plan.inserts, now)
        _update(conn, table, plan.updates, now)
        if spec.name == "event":
            _bump_revision(conn, event_plan, sha256)
    links = plans["sessions"]
    for chunk in _chunks(links.links_remove):
        conn.execute(
            session_speakers.delete().where(
                sa.tuple_(session_speakers.c.session_id, session_speakers.c.speaker_id).in_(chunk)
            )
        )
    for chunk in _chunks(links.links_add):
        conn.execute(session_speakers.insert(), [{"session_id": a, "speaker_id": b} for a, b in chunk])
    for name, column in (("sessions", session_speakers.c.session_id), ("speakers", session_speakers.c.speaker_id)):
        for chunk in _chunks(plans[name].delete_ids):
            conn.execute(session_speakers.delete().where(column.in_(chunk)))
    for spec in reversed(MODELS[1:]):
        _delete(conn, TABLES[spec.name], plans[spec.name].delete_ids)
    if before_commit:
        before_commit(conn)
