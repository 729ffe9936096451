"""The export dialects, and how a row becomes a record in the two fixed ones.

- ``kebab``: the 2016 exports (FOSSASIA Summit 2016, the samples): kebab-case
  keys, references as objects (``"track": {"id": 1, "name": "..."}``), the
  speaker/session links on both sides, a track's ``sessions``, social links
  inside the event.
- ``snake``: the reference server's current export
  (``app/api/helpers/export_helpers.py``): each model's columns in snake_case,
  references as ``*_id`` columns, ``event_id`` on every child record. That
  exporter writes no speaker/session links (a relationship, not a column); so
  no link is lost, sessions here carry ``speakers`` as a list of ids.
- ``source``: as the archive came in (``source.py``).

Everything is derived from the catalog: the fields are the record models'
columns, minus ``derived`` ones, named by ``export_names`` where a dialect
uses an alias; fields kept in ``extra`` are written back under their own name
with their raw value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from event_pipeline.export.values import instant, typed_id
from event_pipeline.media.objects import ARCHIVE_PATHS
from event_pipeline.model.catalog import BY_NAME, EVENT, ModelSpec, Ref

DIALECTS = ("source", "kebab", "snake")


@dataclass
class Context:
    """What building one event's records needs: the dialect, the event's zone and source id, the archive's
    shape (``events.archive_format``), and per referenced model, database id -> its source id and columns."""

    dialect: str
    zone: tzinfo | None
    event_source_id: str
    shape: dict[str, Any] | None
    targets: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


def style(name: str, dialect: str) -> str:
    return name.replace("_", "-") if dialect == "kebab" else name


def field_key(spec: ModelSpec, name: str, dialect: str) -> str:
    """The key a field is written under in a fixed dialect."""
    return style(spec.export_names.get(dialect, {}).get(name, name), dialect)


def media_value(spec: ModelSpec, row: dict[str, Any], column: str) -> Any:
    """A media column as the archive named it: its path (the stored object's URL is ours, not the archive's),
    or the URL the archive gave when it was kept as a URL."""
    paths = (row.get("extra") or {}).get(ARCHIVE_PATHS) or {}
    return paths.get(column, row.get(column))


def shown_columns(ref: Ref) -> tuple[str, ...]:
    """The target columns a fixed dialect repeats in a reference object."""
    return ref.shown or (BY_NAME[ref.target].label,)


def _object(ref: Ref, target: dict[str, Any] | None, dialect: str) -> Any:
    if target is None:
        return None
    if dialect == "snake":
        return typed_id(target["source_id"])
    spec = BY_NAME[ref.target]
    out = {"id": typed_id(target["source_id"])}
    for column in shown_columns(ref):
        out[field_key(spec, column, dialect)] = target.get(column)
    return out


def plain_record(
    spec: ModelSpec, row: dict[str, Any], ctx: Context, many: dict[str, list[int]], embedded: list | None = None
) -> dict[str, Any]:
    """One row as a ``kebab`` or ``snake`` record. ``many``: per list reference, the linked rows' ids;
    ``embedded``: the event's social links, as records already."""
    dialect = ctx.dialect
    media = {m.column for m in spec.media}
    out: dict[str, Any] = {"id": typed_id(row["source_id"])}
    for name in spec.columns:
        if name in spec.derived_columns:
            continue
        value = media_value(spec, row, name) if name in media else row[name]
        out[field_key(spec, name, dialect)] = instant(value, ctx.zone) if hasattr(value, "astimezone") else value
    for ref in spec.refs:
        targets = ctx.targets.get(ref.target, {})
        if ref.column:
            key = ref.column if dialect == "snake" else style(ref.field, dialect)
            out[key] = _object(ref, targets.get(row[ref.column]), dialect)
        elif dialect == "kebab" or spec.link is not None:  # snake: the link, from its owner's side
            linked = [_object(ref, targets.get(i), dialect) for i in many.get(ref.field, [])]
            out[style(ref.field, dialect)] = [item for item in linked if item is not None]
    if dialect == "snake" and spec is not EVENT:
        out["event_id"] = typed_id(ctx.event_source_id)
    if embedded is not None:
        out[style("social_links", dialect)] = embedded
    for key, value in (row.get("extra") or {}).items():
        if key != ARCHIVE_PATHS:
            out[key] = value  # an unmapped field, or a raw value the import could not use: as it came
    return out
