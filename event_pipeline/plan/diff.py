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
from collections.abc import Callable, Iterator
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
    """A model asset's output: its id map, and the writes that realise it.

    A child model's plan keeps no rows: per record (in the order of the model's records) its kind
    (``kinds``: INSERT, UPDATE or UNCHANGED), its row id (``ids``) and its content hash (``digests``,
    20 bytes each), and :func:`planned_rows` builds the rows again, one at a time, from the same records
    and id maps when they are written. Rows kept for the writes were the second peak of an import's
    memory (150 000 row dicts for 100 000 sessions, ~200 MiB) and most of its pickles. The event's
    plan keeps its one row in ``event_rows`` (``kinds`` None)."""

    model: str
    event_id: int
    id_map: dict[str, int]  # source id -> database id (the first record with that id); empty for an unchanged archive
    created: int = 0
    updated: int = 0
    delete_ids: list[int] = field(default_factory=list)
    unchanged: int = 0
    links_add: list[tuple[int, int]] = field(default_factory=list)  # the owned link's (owner id, member id)
    links_remove: list[tuple[int, int]] = field(default_factory=list)
    links_total: int = 0
    expected_revision: int | None = None  # events only: optimistic concurrency check
    kinds: bytearray | None = field(default=None, repr=False)
    ids: array | None = field(default=None, repr=False)  # array("q"): each record's row id
    digests: bytearray | None = field(default=None, repr=False)  # each record's content hash, 20 bytes (SHA-1)
    event_rows: list[dict[str, Any]] = field(default_factory=list)  # the event's row, if it is written

    @property
    def count(self) -> int:
        return self.created + self.updated + self.unchanged

    def diff(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": len(self.delete_ids),
            "unchanged": self.unchanged,
        }

    def written(self) -> set[int]:
        """The ids of the rows this plan inserts or updates."""
        if self.kinds is None or self.ids is None:
            return {row["id"] for row in self.event_rows}
        kinds, ids = self.kinds, self.ids
        return {ids[i] for i, kind in enumerate(kinds) if kind != UNCHANGED}

    def written_ids(self, records: list[NormRecord]) -> dict[str, int]:
        """Source key -> row id of the records this plan inserts or updates."""
        if self.kinds is None or self.ids is None:
            return {row["source_key"]: row["id"] for row in self.event_rows}
        kinds, ids = self.kinds, self.ids
        return {r.source_key: ids[i] for i, r in enumerate(records) if kinds[i] != UNCHANGED}


def content_hash(row: dict[str, Any]) -> str:
    """What the event's row holds, to tell it unchanged without comparing columns: the SHA-1 (hex, 40
    characters, the width of the ``content_hash`` column) of the row serialised by orjson.

    The row's keys come in a fixed order (the record's fields, then the references), so the
    serialisation is stable; ``extra`` keeps the archive's key order, so a reordered export reads as
    changed. orjson tells ``1``, ``1.0`` and ``true`` apart as ``repr`` did, at a quarter of its cost.
    A value orjson refuses (an integer beyond 64 bits, a lone surrogate, which validation keeps out of
    rows anyway) falls back to ``repr``. The rows of the other models: :func:`record_digest`.
    """
    try:
        text = orjson.dumps(row)
    except (TypeError, orjson.JSONEncodeError):
        text = repr(list(row.items())).encode("utf-8", "surrogatepass")
    return hashlib.sha1(text).hexdigest()


def record_digest(spec: ModelSpec, record: NormRecord, maps: dict[str, dict[str, int]]) -> bytes:
    """The content hash (20 bytes; hex in the ``content_hash`` column) of the row ``record`` becomes: the
    SHA-1 of its body's digest (its fields and ``extra``, ``read/spill.body_digest``, taken as it was
    read) and of its source id, key and references as database ids (``maps``), serialised by orjson.

    Equal for equal rows without reading a spilled body; any change of a column, of ``extra`` (key
    order included) or of what a reference points at gives another hash. Rows hashed before this rule
    (whole rows by orjson) read as changed once, and are rewritten with the same content."""
    head: list[str | int | None] = [record.source_id, record.source_key]
    refs = record.refs
    for ref in spec.fk_refs:
        target = refs.get(ref.field)
        head.append(maps[ref.target].get(target) if target is not None else None)
    try:
        text = orjson.dumps(head)
    except (TypeError, orjson.JSONEncodeError):
        text = repr(head).encode("utf-8", "surrogatepass")
    return hashlib.sha1(record.digest() + text).digest()


def _row(spec: ModelSpec, record: NormRecord, maps: dict[str, dict[str, int]]) -> dict[str, Any]:
    values, extra = record.body()
    row = dict(values)
    for ref in spec.fk_refs:
        target = record.refs.get(ref.field)
        row[ref.fk_column] = maps[ref.target].get(target) if target is not None else None
    row["extra"] = extra
    row["source_id"] = record.source_id
    row["source_key"] = record.source_key
    return row


INSERT, UPDATE, UNCHANGED = 0, 1, 2  # ModelPlan.kinds
DIGEST = hashlib.sha1().digest_size  # bytes of each record's content hash in ModelPlan.digests (record_digest)
Amend = Callable[[dict[str, Any]], None]  # applied to each row built (the media plan's stored URLs)


def planned_rows(
    plan: ModelPlan,
    spec: ModelSpec,
    records: list[NormRecord],
    maps: dict[str, dict[str, int]],
    kind: int,
    amend: Amend | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows ``plan`` inserts (``kind`` INSERT) or updates (UPDATE), built one at a time, in the order of
    the records, from the records and id maps it was planned from: the columns, references as database
    ids, bookkeeping, the content hash and the id it gave them; ``amend`` then changes each in place.

    Raises ValueError if ``records`` are not as many as the plan was made for (a plan is only ever given
    its run's records, whose archive bytes are checked)."""
    if plan.kinds is None:  # the event: its one row is in the plan, inserted or updated
        if plan.created if kind == INSERT else plan.updated:
            for row in plan.event_rows:
                if amend is not None:
                    amend(row)
                yield row
        return
    kinds, ids, digests = plan.kinds, plan.ids, plan.digests
    assert ids is not None and digests is not None  # set with kinds, by plan_model
    if len(records) != len(kinds):
        raise ValueError(f"{spec.name}: {len(records)} records, but the plan was made for {len(kinds)}")
    event_id = plan.event_id
    for index, record in enumerate(records):
        if kinds[index] != kind:
            continue
        row = _row(spec, record, maps)
        row["content_hash"] = digests[index * DIGEST : (index + 1) * DIGEST].hex()
        row["event_id"] = event_id
        row["id"] = ids[index]
        if amend is not None:
            amend(row)
        yield row


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
    """Plan the rows of one child model for ``event_id``: each record's kind, row id and content hash
    (the rows themselves are built again when written, :func:`planned_rows`)."""
    table = TABLES[spec.name]
    existing = {} if is_new_event else _existing(engine, table, event_id)
    count = len(records)
    kinds = bytearray(count)  # INSERT (0) unless found below
    ids = array("q", bytes(8 * count))
    digests = bytearray(DIGEST * count)
    plan = ModelPlan(spec.name, event_id, {}, kinds=kinds, ids=ids, digests=digests)
    new: list[int] = []  # indexes of the records to insert
    seen: set[str] = set()
    id_map = plan.id_map
    for index, record in enumerate(records):
        digest = record_digest(spec, record, maps)
        digests[index * DIGEST : (index + 1) * DIGEST] = digest
        seen.add(record.source_key)
        current = existing.get(record.source_key)
        if current is None:
            new.append(index)  # kinds[index] is INSERT (0) already
            continue
        ids[index] = current[0]
        if current[1] == digest.hex():
            plan.unchanged += 1
            kinds[index] = UNCHANGED
        else:
            plan.updated += 1
            kinds[index] = UPDATE
        if record.source_key == record.source_id:
            id_map[record.source_id] = current[0]
    new_ids = reserve_ids(engine, table.name, len(new)) if reserve else range(-1, -len(new) - 1, -1)
    for index, new_id in zip(new, new_ids, strict=True):
        ids[index] = new_id
        record = records[index]
        if record.source_key == record.source_id:
            id_map[record.source_id] = new_id
    plan.created = len(new)
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
        plan.event_rows.append({**row, "revision": 0, "archive_sha256": ""})
        plan.created = 1
    elif target.content_hash != row["content_hash"]:
        plan.event_rows.append(row)
        plan.updated = 1
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


def count_rows(conn: Connection, spec: ModelSpec, event_id: int) -> int:
    """How many rows of ``spec``'s table the event has."""
    owner = TABLES[spec.name].c[spec.owner_column]
    return conn.execute(sa.select(sa.func.count()).where(owner == event_id)).scalar_one()


def count_links(conn: Connection, link: Link, event_id: int) -> int:
    """How many rows of ``link`` the event has."""
    return conn.execute(_event_links(link, [sa.func.count()], event_id)).scalar_one()
