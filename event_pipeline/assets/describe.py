"""What the UI shows of an import asset: definition metadata (kinds, owners, tags, column schema,
table name) and materialization metadata (warnings and rows as markdown tables, row count).

Definition metadata is generated from the catalog and the schema (``model/schema.py``), so a new
column or model shows up in the UI without touching this module. Tables in metadata are bounded
(:data:`SHOWN_ROWS`): the event log is no place for a whole archive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from event_pipeline import settings
from event_pipeline.model.catalog import ModelSpec
from event_pipeline.model.schema import TABLES
from event_pipeline.problems import Problem
from event_pipeline.read.fields import fold_key

SHOWN_ROWS = 20  # rows of a warnings or preview table in an asset's metadata
CELL_CHARS = 80  # a longer cell is cut, ending in "…"
OWNERS = ["team:event-pipeline"]
TAGS = {"domain": "events", "source": "open-event"}

# What each table holds, for the asset's description (the reference server's meaning of the model).
HOLDS = {
    "event": "the event itself: name, dates, timezone, venue, organiser and ticketing settings",
    "social_links": "the event's links to its pages on other sites (Twitter, GitHub, a blog, ...)",
    "custom_forms": "which fields the event's speaker and session submission forms ask for, and which are required",
    "microlocations": "the rooms (microlocations) of the venue where sessions take place",
    "sponsors": "the event's sponsors with their level, logo and link",
    "speakers": "the speakers with their biography, photo and contact details",
    "tracks": "the tracks (themes) sessions are grouped in, with their colour",
    "session_types": "the kinds of session (talk, workshop, ...) and their usual length",
    "sessions": "the talks: title, abstract, start and end, room, track, type and state; "
    "their speakers are in `session_speakers`",
}


def dialect() -> str:
    """``sqlite`` or ``postgresql`` -> the kind shown in the UI (``sqlite`` / ``postgres``), from the settings' URL."""
    name = sa.engine.make_url(settings.database_url(None)).get_backend_name()
    return "postgres" if name.startswith("postgres") else name


def kinds() -> set[str]:
    """The asset kinds of every import asset: the code and the database it writes to."""
    return {"python", dialect()}


def column_schema(spec: ModelSpec) -> dg.TableSchema:
    """The model's table as Dagster's column schema: every column, its SQL type and constraints."""
    table = TABLES[spec.name]
    fields = spec.record.model_fields
    columns = []
    for column in table.columns:
        info = fields.get(column.name)
        columns.append(
            dg.TableColumn(
                name=column.name,
                type=str(column.type.compile(dialect=sqlite.dialect())).lower(),
                description=(info.description if info is not None else None) or _BOOKKEEPING.get(column.name),
                constraints=dg.TableColumnConstraints(nullable=bool(column.nullable), unique=bool(column.primary_key)),
            )
        )
    return dg.TableSchema(columns=columns)


_BOOKKEEPING = {
    "id": "database id",
    "event_id": "the event the row belongs to",
    "source_id": "the record's id in the archive",
    "source_key": "source_id, made unique within the event (a second record with the same id gets id#2)",
    "content_hash": "hash of the row's content, to tell unchanged rows from changed ones",
    "extra": "source fields that are not columns, kept so nothing is lost",
}


def model_definition_metadata(spec: ModelSpec) -> dict[str, Any]:
    """Definition metadata of a model asset: its table's name and column schema."""
    return {"dagster/table_name": spec.table, "dagster/column_schema": column_schema(spec)}


def model_description(spec: ModelSpec) -> str:
    """The model asset's description: what its table holds, and what the asset outputs."""
    holds = HOLDS.get(spec.name, f"the rows of `{spec.table}`")
    return (
        f"Table `{spec.table}`: {holds}. Plans this archive's rows (created, updated, deleted, unchanged); "
        "`import_result` commits every model at once. Outputs its plan with its id map (source id -> database id)."
    )


def concerns(spec: ModelSpec, file: str | None) -> bool:
    """Whether a problem's file is this model's: its own file, or its list inside the event file."""
    if not file:
        return False
    head, _, embedded = file.partition(":")
    return fold_key(embedded) in spec.embedded_in_event if embedded else head in spec.files


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]], total: int | None = None) -> str:
    """A markdown table of the first :data:`SHOWN_ROWS` rows; ``total`` says how many there were."""
    shown = [list(row) for _, row in zip(range(SHOWN_ROWS), rows, strict=False)]
    if not shown:
        return "_none_"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown]
    if total is not None and total > len(shown):
        lines.append(f"\n{len(shown)} of {total} shown.")
    return "\n".join(lines)


def warnings_table(warnings: list[Problem], total: int | None = None) -> dg.MetadataValue:
    """The warnings as a markdown table: file, record id, field, message."""
    rows = ((w.file, w.record_id, w.field, w.message) for w in warnings)
    return dg.MetadataValue.md(
        markdown_table(["file", "record id", "field", "message"], rows, total if total is not None else len(warnings))
    )


def preview_table(rows: Iterable[Mapping[str, Any]], columns: list[str], total: int) -> dg.MetadataValue:
    """The first rows written (inserted or updated; ``total`` of them) as a markdown table of ``columns``; only
    the rows shown are taken from ``rows``."""
    return dg.MetadataValue.md(markdown_table(columns, ([row.get(c) for c in columns] for row in rows), total))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
