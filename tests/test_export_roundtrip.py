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
import json
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from conftest import GOOD_SAMPLES, SAMPLES, run_cli
from roundtrip import MODEL_TABLES, differences, import_quickly, snapshot

from event_pipeline.db import get_engine
from event_pipeline.export import export_event

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "fidelity"
SYNTHETIC = Path("synthetic.zip")  # written by the fixture: the kinds of variation in one small archive
ARCHIVES = [SAMPLES / f"{name}.zip" for name in GOOD_SAMPLES] + sorted(CASES.glob("*/*.zip")) + [SYNTHETIC]


def write_synthetic(path: Path) -> Path:
    """An archive with what real ones vary in: wrapped and bare files with ``.json``, snake keys and aliases
    (``begin``, ``room``, ``featured``), a wall time without offset, ids as numbers and as text in one file,
    a number in a text column, a reference object naming nothing (``{"id": null}``), an inline name that
    differs from its target's, links named by one side only, a track's list missing a session that names
    it, records with other key orders and missing keys, an identical duplicate, unmapped fields."""
    documents = {
        "event.json": {"id": "7", "name": "Synth", "timezone": "Europe/Berlin", "start_time": "2020-05-01T09:00:00",
                       "custom_x": [1, 2], "social_links": [{"id": 1, "name": "Web", "link": "https://x.example"}]},
        "sessions.json": {"sessions": [
            {"id": 1, "title": "A", "begin": "2020-05-01T10:00:00+02:00", "track": 1, "level": 3,
             "speakers": [{"id": 1, "name": "Ann X"}], "room": {"id": None}},
            {"title": "B", "id": 2, "track": {"id": 1, "name": "T, as the session says"}, "speakers": [],
             "extra_field": {"a": 1}},
            {"title": "B", "id": 2, "track": {"id": 1, "name": "T, as the session says"}, "speakers": [],
             "extra_field": {"a": 1}},
        ]},
        "speakers.json": [
            {"id": 1, "name": "Ann", "sessions": [], "featured": False},
            {"featured": True, "name": "Bob", "id": "2", "sessions": [{"id": 2, "title": "B"}]},
        ],
        "tracks.json": [{"id": 1, "name": "T", "sessions": [1], "color": "#fff"}],
    }  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        for name, document in documents.items():
            zf.writestr(name, json.dumps(document))
    return path


def _archive_id(path: Path) -> str:
    if path == SYNTHETIC:
        return "synthetic"
    return path.stem if path.parent == SAMPLES else f"{path.parent.name}/{path.stem}"


def _database(kind: str, tmp: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(
    scope="module",
    params=[(kind, path) for kind in ("sqlite", "postgresql") for path in ARCHIVES],
    ids=lambda p: f"{p[0]}-{_archive_id(p[1])}",
)
def trip(request, tmp_path_factory):
    """A imported, B exported, B imported into a fresh database and over A; what each step gave."""
    kind, archive = request.param
    tmp = tmp_path_factory.mktemp("trip")
    if archive == SYNTHETIC:
        archive = write_synthetic(tmp / "synthetic.zip")
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        (tmp / "dagster_home").mkdir()
        env.setenv("EVENT_PIPELINE_DATA_DIR", str(tmp / "data"))
        env.delenv("EVENT_PIPELINE_DATABASE_URL", raising=False)
        first, second = _database(kind, tmp, request), _database(kind, tmp, request)
        key = "trip"
        imported = import_quickly(archive, first, key)
        exported = tmp / "B.zip"
        code, result, _ = run_cli("export", key, str(exported), "--database-url", first)  # the command itself
        assert code == 0, result
        rows_a = snapshot(first, key)
        import_quickly(exported, second, key)
        rows_b = snapshot(second, key)
        again = import_quickly(exported, first, key)
        result_c = export_event(get_engine(first), tmp / "C.zip", key=key)
        rows_after = snapshot(first, key)
        for url in (first, second):  # many databases in one module: no pool kept open per database
            get_engine(url).dispose()
        yield {
            "archive": archive,
            "export": result["export"],
            "exported": exported,
            "imported": imported,
            "rows_a": rows_a,
            "rows_b": rows_b,
            "again": again,
            "rows_after": rows_after,
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
