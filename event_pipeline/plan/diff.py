"""Planning one model's writes: the id map, and what to insert, update, delete.

A plan is computed from the normalised records, the id maps of the models
they reference and the rows the event already has; it reads the database
but writes nothing (ids are reserved, see ``ids.py``). Rows are matched by
``source_key``, and a content hash tells unchanged rows from changed ones,
so the whole diff is one pass over the records: linear in their number.
"""

from __future__ import annotations

import hashlib
import secrets
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.model.catalog import EVENT, Link, ModelSpec
from event_pipeline.model.schema import LINK_TABLES, TABLES, events
from event_pipeline.plan.ids import reserve_ids
from event_pipeline.read.normalise import NormRecord


@dataclass
class ModelPlan:
    """A model asset's output: its id map, and the writes that realise it."""

    model: str
    event_id: int
    id_map: dict[str, int]  # source id -> database id (the first record with that id)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    delete_ids: list[int] = field(default_factory=list)
    unchanged: int = 0
    links_add: list[tuple[int, int]] = field(default_factory=list)  # the owned link's (owner id, member id)
    links_remove: list[tuple[int, int]] = field(default_factory=list)
    links_total: int = 0
    expected_revision: int | None = None  # events only: optimistic concurrency check
    # Per record, in the order of the model's records: INSERT, UPDATE or UNCHANGED (bytes; see
    # __getstate__). None for the event, whose one row is always pickled.
    kinds: bytearray | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for a re-execution from failure) without its rows, which are most of an import's
        pickles (the sessions plan of 100 000 sessions: 150 MB, 1 s of every import). They are
        derived from the records, the id maps and the ids given here, so :func:`restore_rows` builds
        them again, the same, from the re-read archive; the ids of the rows are kept in their order."""
        if self.kinds is None:
            return dict(self.__dict__)
        return {
            **self.__dict__,
            "inserts": None,
            "updates": None,
            "_ids": (array("q", [row["id"] for row in self.inserts]), array("q", [row["id"] for row in self.updates])),
        }

    @property
    def has_rows(self) -> bool:
        """False for a plan read back from its pickle until :func:`restore_rows` has built its rows."""
        return self.inserts is not None

    @property
    def count(self) -> int:
        return len(self.inserts) + len(self.updates) + self.unchanged

    def diff(self) -> dict[str, int]:
        return {
            "created": len(self.inserts),
            "updated": len(self.updates),
            "deleted": len(self.delete_ids),
            "unchanged": self.unchanged,
        }


def content_hash(row: dict[str, Any]) -> str:
    """What a row holds, to tell an unchanged row without comparing columns: the SHA-1 (hex, 40
    characters, the width of the ``content_hash`` column) of the row serialised by orjson.

    The row's keys come in a fixed order (the record's fields, then the references), so the
    serialisation is stable; ``extra`` keeps the archive's key order, so a reordered export reads as
    changed. orjson tells ``1``, ``1.0`` and ``true`` apart as ``repr`` did, at a quarter of its cost
    (100 000 sessions: 0.33 s against 1.36 s). A value orjson refuses (an integer beyond 64 bits, a
    lone surrogate, which validation keeps out of rows anyway) falls back to ``repr``.
    """
    try:
        text = orjson.dumps(row)
    except (TypeError, orjson.JSONEncodeError):
        text = repr(list(row.items())).encode("utf-8", "surrogatepass")
    return hashlib.sha1(text).hexdigest()


def _row(spec: ModelSpec, record: NormRecord, maps: dict[str, dict[str, int]]) -> dict[str, Any]:
    row = dict(record.values)
    for ref in spec.fk_refs:
        target = record.refs.get(ref.field)
        row[ref.fk_column] = maps[ref.target].get(target) if target is not None else None
    row["extra"] = record.extra
    row["source_id"] = record.source_id
    row["source_key"] = record.source_key
    return row


def _child_row(spec: ModelSpec, record: NormRecord, maps: dict[str, dict[str, int]], event_id: int) -> dict[str, Any]:
    """A child model's row without its id: the columns, references as database ids, bookkeeping, hash."""
    row = _row(spec, record, maps)
    row["content_hash"] = content_hash(row)
    row["event_id"] = event_id
    return row


INSERT, UPDATE, UNCHANGED = 0, 1, 2  # ModelPlan.kinds


def restore_rows(plan: ModelPlan, spec: ModelSpec, records: list[NormRecord], maps: dict[str, dict[str, int]]) -> None:
    """Build again the rows of a plan read back from its pickle (see ``ModelPlan.__getstate__``), from
    the same records and id maps it was planned from, with the ids it gave them. Raises ValueError if
    the records are not those of the plan (a plan is only read back with its run's archive, whose
    bytes are checked)."""
    if plan.has_rows:
        return
    assert plan.kinds is not None  # only a child model's plan is pickled without its rows
    state = plan.__dict__.pop("_ids")
    insert_ids, update_ids = iter(state[0]), iter(state[1])
    if len(records) != len(plan.kinds):
        raise ValueError(f"{spec.name}: {len(records)} records, but the plan was made for {len(plan.kinds)}")
    plan.inserts, plan.updates = [], []
    for record, kind in zip(records, plan.kinds, strict=True):
        if kind == UNCHANGED:
            continue
        row = _child_row(spec, record, maps, plan.event_id)
        row["id"] = next(insert_ids) if kind == INSERT else next(update_ids)
        (plan.inserts if kind == INSERT else plan.updates).append(row)


def _existing(engine: Engine, table: sa.Table, event_id: int | None) -> dict[str, tuple[int, str]]:
    if event_id is None:
        return {}
    query = sa.select(table.c.source_key, table.c.id, table.c.content_hash)
    query = query.where((table.c.id if table is events else table.c.event_id) == event_id)
    with engine.connect() as conn:
        return {key: (id_, hash_) for key, id_, hash_ in conn.execute(query)}


def plan_model(
    engine: Engine,
    spec: ModelSpec,
    records: list[NormRecord],
    event_id: int,
    maps: dict[str, dict[str, int]],
    *,
    is_new_event: bool = False,
    reserve: bool = True,
) -> ModelPlan:
    """Plan the rows of one child model for ``event_id``."""
    table = TABLES[spec.name]
    existing = {} if is_new_event else _existing(engine, table, event_id)
    kinds = bytearray(len(records))  # INSERT (0) unless found below
    plan = ModelPlan(spec.name, event_id, {}, kinds=kinds)
    new_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        row = _child_row(spec, record, maps, event_id)
        seen.add(record.source_key)
        current = existing.get(record.source_key)
        if current is None:
            new_rows.append(row)  # plan.kinds[index] is INSERT (0) already
            continue
        row["id"] = current[0]
        if current[1] == row["content_hash"]:
            plan.unchanged += 1
            kinds[index] = UNCHANGED
        else:
            plan.updates.append(row)
            kinds[index] = UPDATE
        if record.source_key == record.source_id:
            plan.id_map[record.source_id] = row["id"]
    new_ids = reserve_ids(engine, table.name, len(new_rows)) if reserve else range(-1, -len(new_rows) - 1, -1)
    for row, new_id in zip(new_rows, new_ids, strict=True):
        row["id"] = new_id
        plan.inserts.append(row)
        if row["source_key"] == row["source_id"]:
            plan.id_map[row["source_id"]] = new_id
    plan.delete_ids = [id_ for key, (id_, _) in existing.items() if key not in seen]
    return plan


@dataclass(frozen=True)
class EventTarget:
    """Which events row an import writes: the key's existing event, or a new one."""

    event_id: int
    is_new: bool
    identifier: str
    revision: int
    previous_sha256: str | None
    content_hash: str | None


def event_target(engine: Engine, key: str, *, reserve: bool = True) -> EventTarget:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(
                events.c.id, events.c.identifier, events.c.revision, events.c.archive_sha256, events.c.content_hash
            ).where(events.c.import_key == key)
        ).first()
    if found:
        return EventTarget(found.id, False, found.identifier, found.revision, found.archive_sha256, found.content_hash)
    new_id = reserve_ids(engine, events.name, 1)[0] if reserve else -1  # a dry run reserves nothing
    return EventTarget(new_id, True, secrets.token_hex(4), 0, None, None)


def plan_event(target: EventTarget, record: NormRecord, key: str, archive_format: dict | None = None) -> ModelPlan:
    """The event row; its revision and archive hash are moved on at publish time. ``archive_format`` is the
    archive's shape (``read/shape.py``), part of the row's content: an archive written differently is a change."""
    row = _row(EVENT, record, {})
    row["archive_format"] = archive_format
    row["content_hash"] = content_hash(row)
    row.update(id=target.event_id, import_key=key, identifier=target.identifier)
    plan = ModelPlan(EVENT.name, target.event_id, {record.source_id: target.event_id})
    plan.expected_revision = target.revision
    if target.is_new:
        plan.inserts.append({**row, "revision": 0, "archive_sha256": ""})
    elif target.content_hash != row["content_hash"]:
        plan.updates.append(row)
    else:
        plan.unchanged = 1
    return plan


def plan_links(
    engine: Engine, link: Link, event_id: int, pairs: list[tuple[str, str]], maps: dict[str, dict[str, int]]
) -> tuple[set[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """All of the event's rows of ``link`` (database ids: owner, member), and those to add and to remove.

    ``pairs``: (owner source id, member source id); ``maps``: source id -> database id, by model.
    """
    owners, members = maps[link.owner], maps[link.member]
    wanted = {(owners[a], members[b]) for a, b in pairs if a in owners and b in members}
    current = current_links(engine, link, event_id)
    return wanted, sorted(wanted - current), sorted(current - wanted)


def _event_links(link: Link, columns: list[Any], event_id: int) -> sa.Select:
    """A select of ``columns`` over the event's rows of ``link`` (its owners belong to the event)."""
    table, owners = LINK_TABLES[link.table], TABLES[link.owner]
    return (
        sa.select(*columns)
        .select_from(table.join(owners, owners.c.id == table.c[link.owner_column]))
        .where(owners.c.event_id == event_id)
    )


def current_links(engine: Engine, link: Link, event_id: int) -> set[tuple[int, int]]:
    """The event's rows of ``link`` as (owner id, member id)."""
    table = LINK_TABLES[link.table]
    query = _event_links(link, [table.c[link.owner_column], table.c[link.member_column]], event_id)
    with engine.connect() as conn:
        return {(a, b) for a, b in conn.execute(query)}


def count_links(conn: Connection, link: Link, event_id: int) -> int:
    """How many rows of ``link`` the event has."""
    return conn.execute(_event_links(link, [sa.func.count()], event_id)).scalar_one()
