"""The round trip: import A -> export B (source dialect) -> nothing lost, on SQLite and PostgreSQL.

For every good sample and every fidelity case, one module-scoped trip per
archive and database (A imported once, B exported once, B imported once into
a fresh database and once more over A's event), then three properties:

1. the JSON of B equals the JSON of A record by record, field by field, after
   the normalisations README's "Export" section lists (``tests/roundtrip.py``,
   written without the export code);
2. B imported into a fresh database gives the same rows as A: every column but
   the database's own ids and bookkeeping, references compared by the source
   key of the row they name, links, and the bytes of every stored media file;
3. B imported over A's event (same key) changes nothing: every record
   ``unchanged``, no link added or removed; and exporting again then gives a
   byte-identical zip.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest import GOOD_SAMPLES, SAMPLES, run_cli
from roundtrip import differences

from event_pipeline.bulk import import_one_archive
from event_pipeline.db import get_engine
from event_pipeline.export import export_event
from event_pipeline.media import from_settings

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "fidelity"
ARCHIVES = [SAMPLES / f"{name}.zip" for name in GOOD_SAMPLES] + sorted(CASES.glob("*/*.zip"))
MODEL_TABLES = ["social_links", "custom_forms", "microlocations", "sponsors", "speakers", "tracks", "session_types"]
MODEL_TABLES.append("sessions")
# Columns that differ between two databases or two imports by design: database ids, timestamps of the
# write, the event's own bookkeeping (random URL slug, revision, the archive's bytes).
BOOKKEEPING = {"id", "event_id", "created_at", "updated_at", "identifier", "revision", "archive_sha256"}
FOREIGN_KEYS = {"track_id": "tracks", "microlocation_id": "microlocations", "session_type_id": "session_types"}
MEDIA = {"logo_url", "original_image_url", "photo_url", "track_image_url", "slides_url", "audio_url", "video_url"}


def _archive_id(path: Path) -> str:
    return path.stem if path.parent == SAMPLES else f"{path.parent.name}/{path.stem}"


def _database(kind: str, tmp: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


def snapshot(url: str, key: str) -> dict[str, list]:
    """The event's rows as comparable values: no database ids, references by source key, media by bytes."""
    storage = from_settings()
    media_bytes: dict[str, str] = {}

    def media(value):
        if not isinstance(value, str) or storage.key_for_url(value) is None:
            return value
        if value not in media_bytes:
            media_bytes[value] = "sha256:" + hashlib.sha256(storage.read(storage.key_for_url(value))).hexdigest()
        return media_bytes[value]

    out: dict[str, list] = {}
    with get_engine(url).connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn, only=["events", "session_speakers", *MODEL_TABLES])
        event = conn.execute(sa.select(meta.tables["events"]).where(meta.tables["events"].c.import_key == key)).one()
        keys = {}
        for name in MODEL_TABLES:
            table = meta.tables[name]
            rows = [dict(r) for r in conn.execute(sa.select(table).where(table.c.event_id == event.id)).mappings()]
            keys[name] = {r["id"]: r["source_key"] for r in rows}
            out[name] = rows
        for name in MODEL_TABLES:
            converted = []
            for row in out[name]:
                for column, target in FOREIGN_KEYS.items():
                    if column in row:
                        row[column] = keys[target].get(row[column])
                converted.append(
                    sorted(
                        (k, media(v) if k in MEDIA else v)
                        for k, v in row.items()
                        if k not in BOOKKEEPING and k != "content_hash"
                    )
                )
            out[name] = sorted(converted, key=repr)
        event_row = dict(event._mapping)
        out["events"] = sorted(
            (k, media(v) if k in MEDIA else v) for k, v in event_row.items() if k not in BOOKKEEPING | {"content_hash"}
        )
        links = meta.tables["session_speakers"]
        out["session_speakers"] = sorted(
            (keys["sessions"][s], keys["speakers"][p])
            for s, p in conn.execute(sa.select(links.c.session_id, links.c.speaker_id))
            if s in keys["sessions"]
        )
    return out


def _import(path: Path, url: str, key: str) -> dict:
    """The import's steps without Dagster's run machinery (``bulk.import_one_archive``, the same steps as the
    job): the CLI path is covered elsewhere, and this keeps three imports per archive quick."""
    return import_one_archive(get_engine(url), key, str(path), uuid.uuid4().hex, storage=from_settings())


@pytest.fixture(
    scope="module",
    params=[(kind, path) for kind in ("sqlite", "postgresql") for path in ARCHIVES],
    ids=lambda p: f"{p[0]}-{_archive_id(p[1])}",
)
def trip(request, tmp_path_factory):
    """A imported, B exported, B imported into a fresh database and over A; what each step gave."""
    kind, archive = request.param
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    tmp = tmp_path_factory.mktemp("trip")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        (tmp / "dagster_home").mkdir()
        env.setenv("EVENT_PIPELINE_DATA_DIR", str(tmp / "data"))
        env.delenv("EVENT_PIPELINE_DATABASE_URL", raising=False)
        first, second = _database(kind, tmp, request), _database(kind, tmp, request)
        key = "trip"
        imported = _import(archive, first, key)
        exported = tmp / "B.zip"
        code, result, _ = run_cli("export", key, str(exported), "--database-url", first)  # the command itself
        assert code == 0, result
        rows_a = snapshot(first, key)
        _import(exported, second, key)
        rows_b = snapshot(second, key)
        again = _import(exported, first, key)
        result_c = export_event(get_engine(first), tmp / "C.zip", key=key)
        yield {
            "archive": archive,
            "export": result["export"],
            "exported": exported,
            "imported": imported,
            "rows_a": rows_a,
            "rows_b": rows_b,
            "again": again,
            "rows_after": snapshot(first, key),
            "export_again": result_c,
        }


def test_json_of_the_export_equals_the_archive(trip):
    assert differences(trip["archive"], trip["exported"]) == []


def test_importing_the_export_gives_the_same_rows(trip):
    a, b = trip["rows_a"], trip["rows_b"]
    assert sum(len(a[t]) for t in MODEL_TABLES) == sum(trip["imported"]["counts"][t] for t in MODEL_TABLES)
    for table in a:
        assert a[table] == b[table], table


def test_reimporting_the_export_is_a_no_op(trip):
    diff = trip["again"]["diff"]
    total = sum(trip["imported"]["counts"][t] for t in ["events", *MODEL_TABLES])
    assert (diff["created"], diff["updated"], diff["deleted"], diff["unchanged"]) == (0, 0, 0, total)
    assert diff["links"] == {"added": 0, "removed": 0}
    assert trip["rows_after"] == trip["rows_a"]
    # The same database state exports to the same bytes.
    assert trip["export_again"]["sha256"] == trip["export"]["sha256"]
    assert trip["exported"].stat().st_size == trip["export"]["size"]
    assert hashlib.sha256(trip["exported"].read_bytes()).hexdigest() == trip["export"]["sha256"]
