"""Reading and normalising archives in memory: dialects, ids, limits, hostile bytes (no database)."""

from __future__ import annotations

import json
import resource
import stat
import zipfile

import pytest
from archives import SNAKE, archive_errors, kebab_event, write_zip, zip_with

from event_pipeline.model.durations import minutes as parse_length_minutes
from event_pipeline.read import data_files, json_text
from event_pipeline.read.archive import Limits, read_archive
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


def test_an_integer_id_is_one_string_however_often_it_is_named(tmp_path):
    """Sessions 501 and 502 both name session type 41; speaker 7 names session 501: each id is one str
    object (memory: an id named by many records is not a string per mention), as canonical_id writes it.
    (Multi-digit ids: CPython shares one-character strings anyway.)"""
    files = kebab_event(
        session_types=[{"id": 41, "name": "Talk", "length": "00:30"}],
        speakers=[{"id": 7, "name": "Ann", "sessions": [{"id": 501}]}],
        sessions=[
            {"id": 501, "title": "Opening", "session-type": {"id": 41, "name": "Talk"}, "speakers": [{"id": 7}]},
            {"id": 502, "title": "Closing", "session-type": 41, "speakers": []},
        ],
    )
    out = _normalised(tmp_path, files)
    assert not out.problems.errors, out.problems.errors
    sessions = {r.source_id: r for r in out.records["sessions"]}
    session_type = out.records["session_types"][0]
    assert sessions["501"].refs["session_type"] == "41" == canonical_id(41)
    assert sessions["501"].refs["session_type"] is sessions["502"].refs["session_type"] is session_type.source_id
    (ann,) = out.records["speakers"]
    assert ann.refs["sessions"] == ["501"] and ann.refs["sessions"][0] is sessions["501"].source_id
    assert sessions["501"].refs["speakers"][0] is ann.source_id


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


def test_member_inflating_to_a_gibibyte_is_refused_without_inflating_it(tmp_path):
    zeros = b"\0" * (1 << 20)

    def gigabyte(fh):
        for _ in range(1024):
            fh.write(zeros)

    path = zip_with(tmp_path / "bomb.zip", {"images/bomb.bin": gigabyte})
    assert path.stat().st_size < 5 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = archive_errors(path)
    assert "images/bomb.bin: compression ratio above 200" in message and "EVENT_PIPELINE_MAX_RATIO" in message
    message = archive_errors(path, max_ratio=10**9, max_member_bytes=512 << 20)
    assert "images/bomb.bin: member inflates to 1073741824 bytes" in message
    assert "EVENT_PIPELINE_MAX_MEMBER_BYTES" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing inflated


def test_high_compression_ratio_is_refused(tmp_path):
    path = zip_with(tmp_path / "ratio.zip", {"sessions_extra.json": b" " * (20 << 20)})
    assert "compression ratio above 200" in archive_errors(path)
    assert "EVENT_PIPELINE_MAX_RATIO" in archive_errors(path)


def test_too_many_members(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("event", json.dumps(kebab_event()["event"]))
        for i in range(100_000):
            zf.writestr(f"images/{i}", b"")
    assert "100001 members" in archive_errors(path) and "EVENT_PIPELINE_MAX_MEMBERS" in archive_errors(path)


def test_symlink_and_absolute_members(tmp_path):
    path = zip_with(tmp_path / "links.zip", {})
    with zipfile.ZipFile(path, "a") as zf:
        link = zipfile.ZipInfo("images/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("/abs/x", b"x")
    message = archive_errors(path)
    assert "images/link: member is a symbolic link" in message
    assert "/abs/x: member path escapes the archive" in message


def test_deeply_nested_json(tmp_path):
    path = write_zip(tmp_path / "deep.zip", {**kebab_event(), "tracks": "[" * 100_000 + "]" * 100_000})
    assert "tracks: invalid JSON: nested too deeply" in archive_errors(path)


def test_json_file_over_the_limit(tmp_path, monkeypatch):
    big = {**kebab_event(), "speakers": [{"id": i, "name": "x" * 1000} for i in range(60_000)]}  # ~62 MB
    path = write_zip(tmp_path / "big.zip", big)
    assert "JSON file of" in archive_errors(path, max_json_bytes=50 << 20)
    assert archive_errors(path) == ""  # within the default limit: parsed


def _speakers_file(count: int) -> str:
    return json.dumps([{"id": i, "name": f"Speaker {i}", "sessions": []} for i in range(1, count + 1)], indent=1)


def test_a_data_file_is_read_in_pieces_with_the_whole_file_s_positions(tmp_path, monkeypatch):
    """A data file read 1 KiB at a time (``PIECE_BYTES``), text forgotten as it is parsed: its records, and
    the place of a JSON error or of bytes that are no UTF-8, are those of the whole file (json.loads, and
    bytes.decode("utf-8-sig") after a byte order mark); an escape of NUL split between two pieces is seen."""
    monkeypatch.setattr(data_files, "PIECE_BYTES", 1024)
    monkeypatch.setattr(json_text, "DROP_CHARS", 512)
    text = _speakers_file(300)  # ~20 kB: 20 pieces
    out = _normalised(tmp_path, {**kebab_event(), "speakers": b"\xef\xbb\xbf" + text.encode()})
    assert not out.problems.errors
    assert [r.values["name"] for r in out.records["speakers"]] == [f"Speaker {i}" for i in range(1, 301)]

    broken = text[:15_000] + "}" + text[15_000:]
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(broken)
    out = _normalised(tmp_path, {**kebab_event(), "speakers": broken})
    where = f"line {expected.value.lineno} column {expected.value.colno} (char {expected.value.pos})"
    assert [str(e) for e in out.problems.errors] == [f"speakers: invalid JSON: {expected.value.msg} at {where}"]

    seam = 9 * 1024 - 4  # the lone lead byte of "é" is the last byte of a piece: the decoder holds it over
    raw = b"\xef\xbb\xbf" + text[:seam].encode() + "é".encode()[:1] + text[seam:].encode()
    with pytest.raises(UnicodeDecodeError) as undecodable:
        raw.decode("utf-8-sig")
    out = _normalised(tmp_path, {**kebab_event(), "speakers": raw})
    assert [str(e) for e in out.problems.errors] == [f"speakers: not valid UTF-8 at byte {undecodable.value.start}"]

    split = text.replace('"Speaker 7"', '"Speaker\\u0000 7"')  # the escape straddles the first pieces' seam
    at = split.index("\\u0000")
    padded = split[:at] + " " * (1024 - 3 - at % 1024) + split[at:]  # -3: starts 3 bytes before the seam
    out = _normalised(tmp_path, {**kebab_event(), "speakers": padded})
    assert any("NUL" in str(e) for e in out.problems.errors), out.problems.errors


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", "5")
    assert Limits.from_env().max_members == 5
