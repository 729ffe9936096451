"""Every dialect of the format lands in the same columns; nothing is lost."""

from __future__ import annotations

import pytest
from archives import kebab_event, write_zip
from conftest import import_archive, rows, scalar

from event_pipeline.model.durations import minutes as parse_length_minutes
from event_pipeline.read.archive import read_archive
from event_pipeline.read.fields import canonical_id, reference_id
from event_pipeline.read.normalise import normalise


def _normalised(tmp_path, files, prefix=""):
    return normalise(read_archive(write_zip(tmp_path / "a.zip", files, prefix=prefix)))


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [("00:30", 30), ("00.30", 30), ("0.3", 30), ("1", 60), ("00.2 Hour", 20), ("01:45", 105), ("2 hours", None)],
)
def test_durations(raw, minutes):
    assert parse_length_minutes(raw) == minutes


def test_ids_and_references():
    assert canonical_id(1) == canonical_id("1") == canonical_id(" 1 ") == canonical_id(1.0) == "1"
    assert canonical_id(None) is None and canonical_id({"id": 1}) is None and canonical_id(True) is None
    assert reference_id({"id": 3, "name": "x"}) == ("3", True)
    assert reference_id("3") == ("3", True)
    assert reference_id({}) == (None, True)
    assert reference_id({"id": None}) == (None, True)
    assert reference_id([1]) == (None, False)


SNAKE = {
    "event.json": {
        "id": "7",
        "name": "Snake Conf",
        "start_time": "2020-05-05T09:00:00+02:00",
        "end_time": "2020-05-05T18:00:00+02:00",
        "logo": "/images/logo.png",
        "background_image": "http://example.org/bg.jpg",
        "has_session_speakers": True,
        "copyright": {"holder": "X"},
        "call_for_papers": {"announcement": "hi"},
        "social_links": [{"id": 1, "name": "Web", "link": "https://example.org"}],
        "unmapped_field": {"keep": "me"},
    },
    "sponsors.json": [{"id": 1, "name": "ACME", "logo": "/images/s.png", "sponsor_type": "Gold", "level": 1}],
    "speakers.json": [{"id": "5", "name": "Ann", "photo": "/images/a.jpg", "featured": True, "sessions": [{"id": 1}]}],
    "sessions.json": [
        {
            "id": 1,
            "title": "T",
            "start_time": "2020-05-05T10:00:00+02:00",
            "end_time": "2020-05-05T10:30:00+02:00",
            "session_type": {"id": 4, "name": "Lightning", "length": "00.2 Hour"},
            "track": 2,
            "microlocation": {"id": "1"},
            "slides": "/slides/s1.pdf",
            "audio": "audio/a.mp3",
            "video": "",
            "speakers": [],
        }
    ],
    "tracks.json": [{"id": 2, "name": "Main", "track_image_url": "/images/t.png", "location": "Hall"}],
    "microlocations.json": [{"id": 1, "name": "Hall"}],
}


def test_snake_case_dialect_under_a_top_folder(tmp_path):
    out = _normalised(tmp_path, SNAKE, prefix="export-7/")
    assert not out.problems.errors, out.problems.errors
    event = out.event
    assert event.source_id == "7"
    assert event.values["logo_url"] == "/images/logo.png"
    assert event.values["original_image_url"] == "http://example.org/bg.jpg"
    assert event.values["is_sessions_speakers_enabled"] is True
    assert event.values["starts_at"].isoformat() == "2020-05-05T07:00:00+00:00"
    assert event.values["copyright"] == {"holder": "X"}
    assert event.values["speakers_call"] == {"announcement": "hi"}
    assert event.extra["unmapped_field"] == {"keep": "me"}
    sponsor = out.records["sponsors"][0]
    assert (sponsor.values["logo_url"], sponsor.values["sponsor_type"], sponsor.values["level"]) == (
        "/images/s.png",
        "Gold",
        "1",
    )
    speaker = out.records["speakers"][0]
    assert speaker.values["photo_url"] == "/images/a.jpg" and speaker.values["is_featured"] is True
    session = out.records["sessions"][0]
    assert session.refs == {"session_type": "4", "track": "2", "microlocation": "1", "speakers": []}
    assert (session.values["slides_url"], session.values["audio_url"]) == ("/slides/s1.pdf", "audio/a.mp3")
    assert out.records["tracks"][0].extra == {"location": "Hall"}
    session_type = out.records["session_types"][0]  # created from the inline object
    assert (session_type.source_id, session_type.values["name"], session_type.values["length_minutes"]) == (
        "4",
        "Lightning",
        20,
    )
    assert out.links == {"session_speakers": [("1", "5")]}  # given only on the speaker's side
    assert len(out.records["social_links"]) == 1


def test_snake_case_imports_with_extra_kept(db_url, tmp_path):
    code, result = import_archive(write_zip(tmp_path / "snake.zip", SNAKE, prefix="export-7/"), db_url)
    assert code == 0, result
    assert result["counts"]["session_types"] == 1
    assert result["counts"]["session_speakers"] == 1
    extra = rows(db_url, "select extra from events")[0][0]
    assert (extra if isinstance(extra, dict) else __import__("json").loads(extra))["unmapped_field"] == {"keep": "me"}
    assert scalar(db_url, "select length_minutes from session_types") == 20
    assert scalar(db_url, "select sponsor_type from sponsors") == "Gold"


def test_duplicates_and_dangling_references(tmp_path):
    files = kebab_event()
    files["tracks"].append(dict(files["tracks"][0]))  # identical repeat: imported once
    files["speakers"].append({"id": 1, "name": "Another Ann", "sessions": []})  # same id, different record
    files["sessions"][1]["track"] = {"id": 99}  # dangling
    files["sessions"][1]["speakers"] = [{"id": 42}]  # dangling link
    out = _normalised(tmp_path, files)
    assert not out.problems.errors
    assert [t.source_key for t in out.records["tracks"]] == ["1", "2"]
    assert [s.source_key for s in out.records["speakers"]] == ["1", "2", "3", "1#2"]
    assert out.records["sessions"][1].refs["track"] is None
    messages = " | ".join(str(w) for w in out.problems.warnings)
    assert "identical content" in messages
    assert "same id" in messages
    assert "tracks id 99" in messages
    assert "speakers id 42" in messages


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


def test_optional_field_that_does_not_parse_is_kept_raw(tmp_path):
    files = kebab_event()
    files["microlocations"][0]["latitude"] = "north-ish"
    files["microlocations"][0]["floor"] = "ground"
    out = _normalised(tmp_path, files)
    assert not out.problems.errors
    room = out.records["microlocations"][0]
    assert room.values["latitude"] is None and room.extra == {"latitude": "north-ish", "floor": "ground"}
    assert {w.field for w in out.problems.warnings if w.file == "microlocations"} == {"latitude", "floor"}


def test_missing_optional_files_and_extra_files(tmp_path):
    files = kebab_event()
    for name in ("meta", "tracks", "session_types"):
        del files[name]
    files["config.json"] = {"app-name": "x"}
    files["notes.txt"] = "hello"
    out = _normalised(tmp_path, files)
    assert not out.problems.errors
    assert out.records["tracks"] == [] and out.records["custom_forms"] == []
    assert len(out.records["session_types"]) == 1  # from the inline object in session 1
    assert out.records["sessions"][0].refs["track"] is None  # dangling: no tracks file
    ignored = {w.file for w in out.problems.warnings if "ignored" in w.message}
    assert ignored == {"config.json", "notes.txt"}


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
