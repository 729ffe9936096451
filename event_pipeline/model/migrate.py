"""The schema is managed by Alembic; this module upgrades a database to the newest revision.

Revisions live in ``event_pipeline/model/migrations/versions/`` (shipped in the wheel); the
environment (``env.py``) compares against :data:`event_pipeline.model.schema.metadata`.

- **First use.** :func:`event_pipeline.db.get_engine` calls :func:`upgrade_schema`, so the first
  import into a database creates the schema (the baseline revision) and an import into an older
  database upgrades it. ``validate`` opens its engine without it and writes nothing.
- **Two processes at once.** The upgrade runs in one transaction (DDL is transactional on both
  databases) that first takes the schema lock: on PostgreSQL a transaction-scoped advisory lock
  (:data:`SCHEMA_LOCK_ID`), on SQLite the database's write lock (``BEGIN IMMEDIATE`` from
  ``db.py``, waited for up to its busy timeout). The second process waits, then finds the
  database at head and does nothing.
- **Its own version table.** The revision is kept in ``alembic_version_event_pipeline``, not
  Alembic's default ``alembic_version``, which Dagster's PostgreSQL storage uses in a database the
  two may share; for the same reason autogenerate looks only at this project's tables.
- **Databases made before Alembic** (tables, but no version table) are adopted by the baseline
  revision itself, so ``alembic upgrade head`` and the importer treat them alike: it creates the
  bookkeeping tables they lack (``database_identity``, ``media_claims``), adds the nullable
  columns added since (``deleted_at``, ``position``, ``hidden_in_scheduler``, the row-per-field
  ``custom_forms`` columns, ``import_jobs.unmapped``, ...), and on PostgreSQL turns
  ``source_id``/``source_key`` from TEXT into VARCHAR(255)/VARCHAR(271), refusing (with the table
  and the count of rows) when a stored id is longer. SQLite does not enforce VARCHAR lengths, so
  there the declared type stays TEXT (validation reads the limits from the metadata, not the
  database) and no table is rebuilt; :func:`compare_type` (used by ``env.py`` and the tests)
  treats TEXT and VARCHAR(n) as one type on SQLite for that reason.
- **A newer database** (at a revision this code does not have) is refused with a clear error.
- **Adding a revision.** Change ``schema.py`` (or the catalog), then
  ``alembic revision --autogenerate -m "what and why"`` against a fresh database at head (README),
  review the file, and commit it; ``tests/test_migrations.py`` fails while the metadata and the revisions
  disagree.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SCHEMA_LOCK_ID = 0x45504C  # any constant shared by every process of this project
# Not Alembic's default "alembic_version": Dagster's PostgreSQL storage keeps its own revision there, and
# an operator may point Dagster and the imports at one database.
VERSION_TABLE = "alembic_version_event_pipeline"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations; with ``connection``, ``env.py`` runs the
    migrations on it, inside the caller's transaction (which must hold :func:`lock`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision id in ``migrations/versions`` (one head: the history is linear)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no revisions in {MIGRATIONS_DIR}"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version_event_pipeline``; None for an empty or pre-Alembic database."""
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def lock(connection: Connection) -> None:
    """Serialise schema changes between processes, until ``connection``'s transaction ends.

    PostgreSQL: ``pg_advisory_xact_lock`` (re-entrant within a session). SQLite: nothing to do here,
    the transaction began with ``BEGIN IMMEDIATE`` (``db.py``) and so holds the write lock already.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})


def compare_type(
    context: MigrationContext,
    inspected_column: sa.Column,
    metadata_column: sa.Column,
    inspected_type: sa.types.TypeEngine,
    metadata_type: sa.types.TypeEngine,
) -> bool | None:
    """Alembic's type comparison, except that on SQLite TEXT and VARCHAR(n) are the same type.

    SQLite stores both with TEXT affinity and never enforces the length, so a database adopted from
    before Alembic (TEXT ids) matches the baseline (VARCHAR(255) ids) there. Returns False for that
    pair, None (Alembic's default comparison) otherwise; PostgreSQL still sees every difference.
    """
    texts = (sa.String, sa.Text)
    if context.dialect.name == "sqlite" and isinstance(inspected_type, texts) and isinstance(metadata_type, texts):
        return False
    return None


def _own_table(name: str | None, type_: str, parent_names: dict) -> bool:
    """Autogenerate looks only at this project's tables: a database shared with Dagster's storage (or
    anything else) must never get a revision dropping their tables. A table removed from the
    metadata therefore needs a hand-written ``op.drop_table``."""
    from event_pipeline.model.schema import metadata

    return type_ != "table" or name in metadata.tables


def comparison_options() -> dict:
    """The ``MigrationContext`` options for comparing a database with the metadata, used by ``env.py``
    (``alembic revision --autogenerate``, ``alembic check``) and by the tests."""
    return {"compare_type": compare_type, "include_name": _own_table, "version_table": VERSION_TABLE}


def upgrade_schema(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision`` in one locked transaction; returns (before, after).

    Idempotent; a database already there costs one read. Raises what the migration raises
    (nothing is changed then), e.g. ``RuntimeError`` from the baseline for a pre-Alembic
    PostgreSQL database with an id longer than the baseline allows, or ``RuntimeError`` for a
    database at a revision this code does not have.
    """
    with engine.begin() as conn:
        lock(conn)
        before = current_revision(conn)
        if revision == "head" and before == head_revision():
            return before, before
        _check_known(before)
        command.upgrade(alembic_config(conn), revision)
        return before, current_revision(conn)


def _check_known(revision: str | None) -> None:
    """Raise RuntimeError when the database is at a revision this code does not have (a newer release
    upgraded it), instead of Alembic's "Can't locate revision"."""
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise RuntimeError(
            f"the database schema is at revision {revision!r}, which this version of event-pipeline does not have"
            f" (its newest is {head_revision()!r}): a newer release upgraded it; use that release or newer"
        ) from None
