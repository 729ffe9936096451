"""Alembic manages the schema: the baseline equals ``schema.metadata``, and a database made before Alembic
(the DDL of an earlier release, written out in ``tests/data/``) is upgraded by the next import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from archives import write_zip
from conftest import import_archive, rows, run_cli, scalar

from event_pipeline.db import get_engine
from event_pipeline.model import migrate
from event_pipeline.model.schema import metadata

DATA = Path(__file__).parent / "data"
# Written out here, not read from the code under test: the tables of the schema and Alembic's own.
TABLES = {
    "events",
    "social_links",
    "custom_forms",
    "microlocations",
    "sponsors",
    "speakers",
    "tracks",
    "session_types",
    "sessions",
    "session_speakers",
    "import_jobs",
    "id_blocks",
    "database_identity",
    "media_claims",
    "alembic_version_event_pipeline",
}
MODEL_TABLES = ("events", "social_links", "custom_forms", "microlocations", "sponsors", "speakers", "tracks")
MODEL_TABLES += ("session_types", "sessions")


def _differences(url: str, target: sa.MetaData = metadata) -> list:
    """What ``alembic check`` would find: the database against ``target``, with the project's comparison."""
    with get_engine(url, create_schema=False).connect() as conn:
        context = MigrationContext.configure(conn, opts=migrate.comparison_options())
        return compare_metadata(context, target)


def _make_legacy(url: str) -> None:
    """The schema of the release before Alembic (commit 4883774), as that release created it."""
    dialect = sa.engine.make_url(url).get_backend_name()
    ddl = (DATA / f"schema_before_alembic.{dialect}.sql").read_text()
    statements = [s for s in ("\n".join(line for line in ddl.splitlines() if not line.startswith("--"))).split(";")]
    with get_engine(url, create_schema=False).begin() as conn:
        for statement in filter(str.strip, statements):
            conn.exec_driver_sql(statement)
        # A job row written by that release: the upgrade must keep it.
        conn.execute(
            sa.text("INSERT INTO import_jobs (key, state, started_at) VALUES ('old', 'SUCCESS', :t)"),
            {"t": "2026-11-29 10:00:00+00:00"},
        )


def _columns(url: str, table: str) -> dict[str, sa.types.TypeEngine]:
    return {c["name"]: c["type"] for c in sa.inspect(get_engine(url, create_schema=False)).get_columns(table)}


def test_baseline_schema_equals_the_metadata(db_url):
    get_engine(db_url)  # first use: the baseline revision creates everything
    assert set(sa.inspect(get_engine(db_url, create_schema=False)).get_table_names()) == TABLES
    assert scalar(db_url, "select version_num from alembic_version_event_pipeline") == "0002"
    assert _differences(db_url) == []
    (namespace,) = rows(db_url, "select media_namespace from database_identity where id = 1")[0]
    assert namespace.startswith("db-") and len(namespace) == 19  # "db-" and 64 random bits in hex
    assert scalar(db_url, "select count(*) from database_identity") == 1
    with get_engine(db_url, create_schema=False).begin() as conn:  # another program's table in the database
        conn.execute(sa.text("CREATE TABLE runs (run_id VARCHAR(255) PRIMARY KEY)"))
    assert _differences(db_url) == []  # neither proposed for removal nor looked at
    assert run_cli("db", "upgrade", "--database-url", db_url)[1] == {
        "state": "SUCCESS",
        "from_revision": "0002",
        "revision": "0002",
    }


def test_a_column_added_without_a_revision_is_found(db_url):
    """The comparison above would fail the suite for a column added to the metadata alone."""
    get_engine(db_url)
    changed = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["sessions"].append_column(sa.Column("room_capacity", sa.Integer))
    changed.tables["import_jobs"].append_column(sa.Column("note", sa.String(80)))
    found = sorted((op[0], op[2], op[3].name) for op in _differences(db_url, changed))
    assert found == [("add_column", "import_jobs", "note"), ("add_column", "sessions", "room_capacity")]


# A current-format export using the columns added since that release: row-per-field forms,
# positions, hidden_in_scheduler, deleted_at.
EXPORT = {
    "event": {"id": 7, "name": "Migrated Conf", "timezone": "UTC", "deleted_at": None},
    "forms": [
        {"id": 1, "form": "speaker", "field_identifier": "email", "name": "Email", "type": "email", "position": 3},
    ],
    "microlocations": [{"id": 40, "name": "Hall A", "position": 2, "hidden_in_scheduler": True}],
    "tracks": [{"id": 70, "name": "Web", "position": 1}],
    "session_types": [{"id": 90, "name": "Talk", "length": "00:45", "position": 0}],
    "speakers": [{"id": 300, "name": "Alex"}],
    "sessions": [
        {"id": 500, "title": "Upgrades", "track_id": 70, "microlocation_id": 40, "session_type_id": 90},
    ],
}


def test_database_made_before_alembic_is_upgraded_by_an_import(db_url, tmp_path):
    _make_legacy(db_url)
    assert "unmapped" not in _columns(db_url, "import_jobs")
    assert "form" not in _columns(db_url, "custom_forms")

    code, payload = import_archive(write_zip(tmp_path / "migrated.zip", EXPORT), db_url)

    assert code == 0, payload
    assert scalar(db_url, "select version_num from alembic_version_event_pipeline") == "0002"
    assert _differences(db_url) == []
    for table in MODEL_TABLES:
        assert "deleted_at" in _columns(db_url, table), table
    assert {"form", "field_identifier", "is_required", "position"} <= set(_columns(db_url, "custom_forms"))
    assert {"position", "hidden_in_scheduler"} <= set(_columns(db_url, "microlocations"))
    assert "unmapped" in _columns(db_url, "import_jobs")
    if db_url.startswith("postgresql"):  # SQLite keeps TEXT: it enforces no length (see migrate.py)
        for table in MODEL_TABLES:
            kinds = _columns(db_url, table)
            assert (kinds["source_id"].length, kinds["source_key"].length) == (255, 271), table
    assert scalar(db_url, "select count(*) from database_identity") == 1
    # The import's rows, as the archive has them.
    assert rows(db_url, "select form, field_identifier, name, type, position from custom_forms") == [
        ("speaker", "email", "Email", "email", 3)
    ]
    assert rows(db_url, "select source_id, name, position, hidden_in_scheduler from microlocations") == [
        ("40", "Hall A", 2, True)
    ]
    assert rows(db_url, "select source_id, position from tracks") == [("70", 1)]
    assert rows(
        db_url,
        "select s.source_id, s.title, t.source_id, m.source_id, y.source_id from sessions s"
        " join tracks t on t.id = s.track_id join microlocations m on m.id = s.microlocation_id"
        " join session_types y on y.id = s.session_type_id",
    ) == [("500", "Upgrades", "70", "40", "90")]
    assert rows(db_url, "select name, deleted_at from events") == [("Migrated Conf", None)]
    # The old release's job row is kept; the new one records its unmapped fields column.
    jobs = rows(db_url, "select key, state, unmapped from import_jobs order by id")
    assert [(key, state) for key, state, _ in jobs] == [("old", "SUCCESS"), ("migrated", "SUCCESS")]
    assert jobs[0][2] is None and jobs[1][2] is not None


def test_two_processes_upgrade_an_old_database_at_once(db_url):
    """Exactly one of two processes started together upgrades; the other waits for it and finds head."""
    _make_legacy(db_url)
    cli = str(Path(sys.executable).parent / "event-pipeline")
    procs = [
        subprocess.Popen([cli, "db", "upgrade", "--database-url", db_url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert sorted(str(r["from_revision"]) for r in results) == ["0002", "None"]
    assert {r["revision"] for r in results} == {"0002"}
    assert _differences(db_url) == []
    assert scalar(db_url, "select count(*) from database_identity") == 1
    assert rows(db_url, "select key, state from import_jobs") == [("old", "SUCCESS")]


def test_an_old_id_longer_than_the_baseline_allows(db_url, tmp_path):
    """PostgreSQL refuses the upgrade, naming the column and the rows, and changes nothing; SQLite (which
    never enforced the length) upgrades and keeps the row."""
    _make_legacy(db_url)
    long_id = "x" * 300
    with get_engine(db_url, create_schema=False).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO events (id, import_key, identifier, revision, archive_sha256, source_id, source_key,"
                " content_hash, extra, created_at, updated_at) VALUES (1, 'long', 'abcd1234', 1, :sha, :id, :id,"
                " :hash, '{}', :t, :t)"
            ),
            {"sha": "0" * 64, "id": long_id, "hash": "0" * 40, "t": "2026-11-29 10:00:00+00:00"},
        )
    engine = get_engine(db_url, create_schema=False)
    if db_url.startswith("postgresql"):
        with pytest.raises(RuntimeError, match=r"events\.source_id: 1 row\(s\) longer than 255 characters"):
            migrate.upgrade_schema(engine)
        assert not sa.inspect(engine).has_table("alembic_version_event_pipeline")
        assert "deleted_at" not in _columns(db_url, "events")  # the whole upgrade was rolled back
    else:
        assert migrate.upgrade_schema(engine) == (None, "0002")
        assert rows(db_url, "select source_id from events") == [(long_id,)]


def test_validate_against_an_old_database_writes_nothing(db_url, tmp_path):
    """``validate`` diffs against the old tables as they are: no upgrade, no alembic_version_event_pipeline, no row."""
    _make_legacy(db_url)
    engine = get_engine(db_url, create_schema=False)

    def state() -> dict[str, tuple]:
        with engine.connect() as conn:  # one connection: on SQLite a second one would wait for its lock
            inspector = sa.inspect(conn)
            return {
                table: (
                    tuple(c["name"] for c in inspector.get_columns(table)),
                    sorted(map(tuple, conn.execute(sa.text(f'select * from "{table}"'))), key=repr),
                )
                for table in inspector.get_table_names()
            }

    before = state()
    code, payload, _ = run_cli("validate", str(write_zip(tmp_path / "migrated.zip", EXPORT)), "--database-url", db_url)
    assert code == 0, payload
    assert payload["state"] == "VALID"
    assert payload["diff"]["created"] == 7  # event, form, room, track, type, speaker, session: all new
    assert state() == before
    assert "alembic_version_event_pipeline" not in before


def test_a_database_from_a_newer_release_is_refused_clearly(db_url):
    get_engine(db_url)
    with get_engine(db_url, create_schema=False).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version_event_pipeline SET version_num = 'f00dcafe'"))
    with pytest.raises(RuntimeError, match="revision 'f00dcafe', which this version of event-pipeline does not have"):
        migrate.upgrade_schema(get_engine(db_url, create_schema=False))
    assert scalar(db_url, "select version_num from alembic_version_event_pipeline") == "f00dcafe"  # left as it was


def test_database_made_by_the_last_release_before_alembic_keeps_its_media_namespace(db_url):
    """That release created the whole current schema with ``create_all`` and one identity row: the upgrade only
    records the revision, and the media namespace (every stored media key starts with it) stays."""
    engine = get_engine(db_url, create_schema=False)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(sa.text("INSERT INTO database_identity (id, media_namespace) VALUES (1, 'db-0123456789abcdef')"))
    assert migrate.upgrade_schema(engine) == (None, "0002")
    assert rows(db_url, "select id, media_namespace from database_identity") == [(1, "db-0123456789abcdef")]
    assert _differences(db_url) == []
