"""What the event's rows reference now: their media column values and the stored objects those name.

- :func:`current_media`: one model's rows of the event, ``source key -> (row id,
  {media column: value}, extra's archive paths)``;
- :func:`keys_among` / :func:`current_keys`: the keys of this database's objects of this event among column
  values (URLs of anything else are not ours and are never touched);
- :func:`referenced` / :func:`referenced_keys`: every object the event's rows point at,
  the set of keys that no removal may delete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.media import claims
from event_pipeline.media.objects import ARCHIVE_PATHS
from event_pipeline.media.storage import Storage, event_prefix
from event_pipeline.model.catalog import MEDIA_MODELS, ModelSpec
from event_pipeline.model.schema import TABLES


def current_media(
    engine: Engine | Connection, spec: ModelSpec, event_id: int
) -> dict[str, tuple[int, dict[str, Any], dict]]:
    """The event's rows of one model: source key -> (id, media column values, extra's archive paths)."""
    table = TABLES[spec.name]
    owner = table.c[spec.owner_column]
    columns = [m.column for m in spec.media]
    # Only extra's archive paths, not the whole of it: a fraction of the bytes to read and decode.
    paths_of = table.c.extra[ARCHIVE_PATHS].label("paths")
    query = sa.select(table.c.source_key, table.c.id, paths_of, *[table.c[c] for c in columns]).where(owner == event_id)
    found = {}
    with contextlib.nullcontext(engine) if isinstance(engine, Connection) else engine.connect() as conn:
        for source_key, id_, paths, *values in conn.execute(query):  # rows unpacked as tuples: no mapping per row
            found[source_key] = (id_, dict(zip(columns, values, strict=True)), paths if isinstance(paths, dict) else {})
    return found


def keys_among(storage: Storage, namespace: str, event_id: int, values: Iterable[Any]) -> set[str]:
    """The keys of this database's objects of this event among column values (other URLs are not ours)."""
    prefix = event_prefix(namespace, event_id)
    keys = set()
    for value in values:
        if isinstance(value, str):
            key = storage.key_for_url(value)
            if key and key.startswith(prefix):
                keys.add(key)
    return keys


def referenced(conn: Engine | Connection, storage: Storage, namespace: str, event_id: int) -> set[str]:
    """The keys of the objects the event's rows (every media model) point at."""
    keys: set[str] = set()
    for spec in MEDIA_MODELS:
        keys |= current_keys(storage, namespace, event_id, current_media(conn, spec, event_id))
    return keys


def current_keys(
    storage: Storage, namespace: str, event_id: int, current: dict[str, tuple[int, dict[str, Any], dict]]
) -> set[str]:
    """The keys of this database's objects of this event that ``current`` (:func:`current_media`) points at."""
    return keys_among(
        storage, namespace, event_id, (v for _id, values, _paths in current.values() for v in values.values())
    )


def referencing(storage: Storage) -> Callable[[Connection, str, int], set[str]]:
    """:func:`referenced` for one storage, as ``claims.sweep`` takes it: (conn, namespace, event id) -> keys."""
    return lambda conn, namespace, event_id: referenced(conn, storage, namespace, event_id)


def referenced_keys(engine: Engine, storage: Storage, event_id: int) -> set[str]:
    """The stored objects the event's rows point at now."""
    return referenced(engine, storage, claims.media_namespace(engine), event_id)
