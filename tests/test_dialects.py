"""Every dialect of the format lands in the same columns; nothing is lost."""

from __future__ import annotations

from archives import SNAKE, kebab_event, write_zip
from conftest import import_archive, rows, scalar

from event_pipeline.read.archive import read_archive
from event_pipeline.read.normalise import normalise


def _normalised(tmp_path, files, prefix=""):
    return normalise(read_archive(write_zip(tmp_path / "a.zip", files, prefix=prefix)))


def test_snake_case_imports_with_extra_kept(db_url, tmp_path):
    code, result = import_archive(write_zip(tmp_path / "snake.zip", SNAKE, prefix="export-7/"), db_url)
    assert code == 0, result
    assert result["counts"]["session_types"] == 1
    assert result["counts"]["session_speakers"] == 1
    extra = rows(db_url, "select extra from events")[0][0]
    assert (extra if isinstance(extra, dict) else __import__("json").loads(extra))["unmapped_field"] == {"keep": "me"}
    assert scalar(db_url, "select length_minutes from session_types") == 20
    assert scalar(db_url, "select sponsor_type from sponsors") == "Gold"


def test_duplicate_ids_import_all_records_and_resolve_to_the_first(db_url, tmp_path):
    files = kebab_event()
    files["speakers"].append({"id": "1", "name": "Another Ann", "sessions": [{"id": 3}]})
    code, result = import_archive(write_zip(tmp_path / "dup.zip", files), db_url)
    assert code == 0, result
    assert result["counts"]["speakers"] == 4
    linked = rows(
        db_url,
        "select p.name from session_speakers l join sessions s on s.id = l.session_id "
        "join speakers p on p.id = l.speaker_id where s.source_id = '3'",
    )
    assert linked == [("Ann",)]  # the reference to id 1 resolves to the first record


def test_nul_characters_are_refused_where_they_are(db_url, tmp_path):
    """PostgreSQL text cannot hold NUL, and an escaped NUL in JSON breaks ``extra->>'k'``: refused, located."""
    files = kebab_event()
    files["sessions"][0]["title"] = "Open\u0000ing"
    code, result = import_archive(write_zip(tmp_path / "nul.zip", files), db_url)
    assert code == 1, result
    assert result["errors"] == [
        {
            "file": "sessions",
            "record_id": "1",
            "field": "title",
            "message": "contains a NUL character (\\u0000), which the database cannot store",
        }
    ]
    assert scalar(db_url, "select count(*) from sessions") == 0
