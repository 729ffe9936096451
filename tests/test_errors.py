"""Broken archives fail cleanly, with every problem listed, and write no rows."""

from __future__ import annotations

import zipfile

import pytest
from archives import kebab_event, write_zip
from conftest import import_archive, rows, scalar


def _fails(path, url) -> dict:
    code, result = import_archive(path, url)
    assert code == 1, result
    assert result["state"] == "FAILURE"
    assert scalar(url, "select count(*) from events") == 0
    assert scalar(url, "select count(*) from sessions") == 0
    assert rows(url, "select state from import_jobs") == [("FAILURE",)]
    return result


def test_every_problem_is_reported_at_once(db_url, tmp_path):
    files = kebab_event()
    files["sessions"].append("not an object")
    files["sessions"].append({"title": "no id"})
    files["speakers"].append({"id": {"nested": 1}, "name": "bad id"})
    files["tracks"].append({"id": 5, "name": ["a", "list"]})
    files["microlocations"] = '[{"id": 1,, "name": "x"}]'
    result = _fails(write_zip(tmp_path / "bad.zip", files), db_url)
    found = {(e["file"], e["field"]) for e in result["errors"]}
    assert ("sessions", None) in found  # record #4 is not an object
    assert ("sessions", "id") in found
    assert ("speakers", "id") in found
    assert ("tracks", "name") in found
    assert ("microlocations", None) in found
    assert len(result["errors"]) == 5
    assert "and 4 more problems" in result["error"]
    invalid_json = next(e for e in result["errors"] if e["file"] == "microlocations")
    assert "line 1 column 11" in invalid_json["message"]
    wrong_type = next(e for e in result["errors"] if e["file"] == "tracks")
    assert wrong_type["record_id"] == "5"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.write_bytes(b"\x00\x01 not a zip"), "not a readable zip"),
        (lambda p: zipfile.ZipFile(p, "w").close(), "no event file"),
        (lambda p: write_zip(p, {"sessions": []}), "no event file"),
        (lambda p: write_zip(p, {"event": [1, 2]}), "expected one event record, got a list of 2"),
        (lambda p: write_zip(p, {"event": b'"x"'}), "event must be a JSON object"),
        (lambda p: write_zip(p, {"event": {"id": 1}}), "required field is missing"),
        (lambda p: write_zip(p, {"event": {"name": "x"}}), "id is missing"),
        (lambda p: write_zip(p, {**kebab_event(), "sessions": {"id": 1}}), "expected a list"),
        (lambda p: write_zip(p, {**kebab_event(), "../../evil": "x"}), "escapes the archive"),
        (lambda p: write_zip(p, {**kebab_event(), "speakers": b"\xff\xfe[]"}), "not valid UTF-8"),
    ],
)
def test_broken_archives(db_url, tmp_path, make, needle):
    path = tmp_path / "broken.zip"
    make(path)
    result = _fails(path, db_url)
    assert needle in result["error"], result


def test_nested_zip_only_is_an_error_with_a_warning(db_url, tmp_path):
    inner = write_zip(tmp_path / "inner.zip", kebab_event())
    outer = write_zip(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes()})
    result = _fails(outer, db_url)
    assert "no event file" in result["error"]
    assert any("nested zip" in w["message"] for w in result["warnings"])


def test_missing_file_is_reported(db_url, tmp_path):
    code, result = import_archive(tmp_path / "nope.zip", db_url)
    assert code == 1 and result["state"] == "FAILURE" and "not found" in result["error"]
