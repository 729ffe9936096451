"""Database schema, generated from the catalog.

Each model table has the record's fields as columns plus bookkeeping:
``source_id`` (the id in the archive), ``source_key`` (unique per event; a
second record with the same source id gets ``id#2``), ``content_hash`` (to
tell unchanged rows from changed ones without comparing every column) and
``extra`` (source fields that are not columns, so nothing is lost).

The metadata carries a naming convention, so constraint and index names are
stable across databases. Alembic manages the schema (``migrate.py``, revisions
in ``migrations/versions/``): a change here needs a new revision, and
``tests/test_migrations.py`` fails until it exists.
"""

from __future__ import annotations

import datetime as dt
import typing
from types import UnionType

import sqlalchemy as sa

from event_pipeline.model.catalog import BY_NAME, EVENT, LINKS, MODELS, Link, ModelSpec

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_SQL_TYPES: dict[type, typing.Callable[[], sa.types.TypeEngine]] = {
    str: sa.Text,
    int: sa.Integer,
    float: sa.Float,
    bool: sa.Boolean,
    dt.datetime: lambda: sa.DateTime(timezone=True),
    dict: sa.JSON,
}


def _sql_type(annotation: typing.Any) -> sa.types.TypeEngine:
    """Map a record field's annotation (``str | None`` etc.) to a column type."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return _SQL_TYPES[annotation]()


def _record_columns(spec: ModelSpec) -> list[sa.Column]:
    return [
        sa.Column(name, _sql_type(info.annotation), nullable=True) for name, info in spec.record.model_fields.items()
    ]


# The longest id an archive may use: the unique index on (event_id, source_key) must hold a key (a
# PostgreSQL B-tree entry is at most ~2700 bytes; 255 characters of 4 bytes fit). ``source_key`` has
# room for the "#n" of a repeated id. Validation reads these lengths from the columns (read/storable.py).
SOURCE_ID_LENGTH = 255


def _bookkeeping_columns() -> list[sa.Column]:
    return [
        sa.Column("source_id", sa.String(SOURCE_ID_LENGTH), nullable=False),
        sa.Column("source_key", sa.String(SOURCE_ID_LENGTH + 16), nullable=False),
        sa.Column("content_hash", sa.String(40), nullable=False),
        sa.Column("extra", sa.JSON, nullable=False, default=dict),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


events = sa.Table(
    EVENT.table,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("import_key", sa.Text, nullable=False, unique=True),
    sa.Column("identifier", sa.String(16), nullable=False, unique=True),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("archive_sha256", sa.String(64), nullable=False),
    # How the archive wrote its records (key spellings, value types, envelopes, file names): what the
    # ``source`` export needs to write them back as they came (``read/shape.py``).
    sa.Column("archive_format", sa.JSON, nullable=True),
    *_record_columns(EVENT),
    *_bookkeeping_columns(),
)

TABLES: dict[str, sa.Table] = {EVENT.name: events}

for _spec in MODELS[1:]:
    TABLES[_spec.name] = sa.Table(
        _spec.table,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False, index=True),
        *[sa.Column(ref.column, sa.Integer, sa.ForeignKey(f"{ref.target}.id"), nullable=True) for ref in _spec.fk_refs],
        *_record_columns(_spec),
        *_bookkeeping_columns(),
        sa.UniqueConstraint("event_id", "source_key", name=f"uq_{_spec.table}_event_source_key"),
    )


def _link_table(link: Link) -> sa.Table:
    """A link's table: a row per (owner, member) pair; the member column indexed for deletes by member."""
    owner, member = BY_NAME[link.owner].table, BY_NAME[link.member].table
    return sa.Table(
        link.table,
        metadata,
        sa.Column(link.owner_column, sa.Integer, sa.ForeignKey(f"{owner}.id"), primary_key=True),
        sa.Column(link.member_column, sa.Integer, sa.ForeignKey(f"{member}.id"), primary_key=True, index=True),
    )


LINK_TABLES: dict[str, sa.Table] = {link.table: _link_table(link) for link in LINKS}

import_jobs = sa.Table(
    "import_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.Text, nullable=False, index=True),
    sa.Column("archive_path", sa.Text),
    sa.Column("archive_sha256", sa.String(64)),
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("host", sa.Text),  # where the importing process ran, to tell an interrupted run
    sa.Column("pid", sa.Integer),
    sa.Column("state", sa.String(16), nullable=False),  # RUNNING, SUCCESS, FAILURE
    sa.Column("event_id", sa.Integer),  # no FK: a FAILURE row may outlive its event
    sa.Column("error", sa.Text),
    sa.Column("errors", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("counts", sa.JSON),
    sa.Column("diff", sa.JSON),
    sa.Column("warnings", sa.JSON),
    sa.Column("unmapped", sa.JSON),  # per file, the source fields kept only in extra, with record counts
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

# Ids are reserved in blocks before the single write transaction, so every
# asset can output its final id map and a re-execution from failure still
# sees valid maps. Reserved-but-unused ids are gaps, as with sequences.
id_blocks = sa.Table(
    "id_blocks",
    metadata,
    sa.Column("table_name", sa.Text, primary_key=True),
    sa.Column("next_id", sa.Integer, nullable=False),
)

# This database's identity: media keys start with its ``media_namespace``, so two
# databases sharing one media folder or bucket never see (or delete) each other's
# objects. One row, created with the schema (the baseline revision), never changed.
database_identity = sa.Table(
    "database_identity",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("media_namespace", sa.String(32), nullable=False),
)

# The media objects each running import relies on (uploaded or reused), recorded
# before it stores anything: what a killed import left behind is found here by the
# next import of its key, and no cleanup removes an object a live import relies on.
media_claims = sa.Table(
    "media_claims",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("object_key", sa.Text, primary_key=True),
    sa.Column("import_key", sa.Text, nullable=False, index=True),
    sa.Column("host", sa.Text),  # where the claiming process runs, to tell a killed one
    sa.Column("pid", sa.Integer),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
)
