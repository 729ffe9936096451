"""Media copied to storage: local folder and a real S3 HTTP endpoint (moto's server on loopback).

Every check reads what is really stored (files, S3 objects through boto3, the
stored URLs fetched over file:// or HTTP) and the rows really in the database,
and compares bytes by sha256 with the zip's members.

Here: every column stored byte-exact, the samples, re-imports, names. Failures are
``test_media_failures.py``, fetching URLs ``test_media_fetch.py``, keys and temporary
files ``test_media_storage.py``.
"""

from __future__ import annotations

import json
import unicodedata
import zipfile

import pytest
from archives import kebab_event, write_zip
from conftest import GOOD_SAMPLES, import_archive, rows, sample, scalar
from media_archives import (
    COLUMNS,
    MEDIA_FILES,
    blob,
    check_media_stored,
    column_value,
    extra_of,
    get,
    media_event,
    references,
    served_suffix,
    sha,
    stored_urls,
)

from event_pipeline.media.local_storage import LocalStorage
from event_pipeline.media.s3_storage import S3Storage

# ---------------------------------------------------------------------------
# Byte-exact copies and URL rewriting in every column


def test_every_media_column_is_stored_byte_exact_and_rewritten(db_url, backend, tmp_path):
    path = write_zip(tmp_path / "conf.zip", media_event())
    code, result = import_archive(path, db_url)
    assert code == 0, result
    stored = check_media_stored(db_url, backend, result["result"]["id"], path)
    assert len(stored) == result["media"]["objects"] == result["media"]["uploaded"]
    assert result["media"]["bytes"] == sum(len(b) for b in MEDIA_FILES.values())


# ---------------------------------------------------------------------------
# Every sample archive, both backends


# Objects per sample: every distinct file its JSON names that the zip has (2016: 4 of them under a mis-encoded
# name, 2015: 1 in another letter case), once however many columns name it (2014, 2015 and 2016 each have
# two references to the same bytes).
SAMPLE_OBJECTS = {"FOSSASIASummit2014": 17, "FOSSASIASummit2015": 30, "FOSSASIASummit2016": 186, "OTS16": 77}


@pytest.mark.parametrize("name", GOOD_SAMPLES)
def test_sample_media_stored_and_urls_lead_to_the_bytes(name, db_url, backend):
    path = sample(name)
    code, result = import_archive(path, db_url)
    assert code == 0, result
    with zipfile.ZipFile(path) as zf:
        members = {unicodedata.normalize("NFC", n): n for n in zf.namelist() if not n.endswith("/")}
        digests = {nfc: sha(zf.read(n)) for nfc, n in members.items()}
    # Every warning: the result lists the first EVENT_PIPELINE_MAX_PROBLEMS_LISTED, import_jobs keeps them all.
    (stored_warnings,) = rows(db_url, "select warnings from import_jobs where state = 'SUCCESS'")[0]
    warnings = json.loads(stored_warnings) if isinstance(stored_warnings, str) else stored_warnings
    assert len(warnings) == result["warnings_total"] and warnings[: len(result["warnings"])] == result["warnings"]
    urls = stored_urls(db_url)
    stored = backend.objects()
    expected_in_zip = 0
    distinct = set()  # (sha256, kept suffix) of every file stored: one object each
    for table, source_id, column, value in references(path):
        where = "id = :e" if table == "events" else "event_id = :e and source_id = :s"
        (current, extra), *_ = rows(
            db_url, f"select {column}, extra from {table} where {where}", e=result["result"]["id"], s=source_id
        )
        extra = extra_of(extra)
        member = unicodedata.normalize("NFC", value.lstrip("/"))
        if value.startswith(("http://", "https://")):
            assert current == value  # kept, not fetched
        elif member in members:
            expected_in_zip += 1
            distinct.add((digests[member], served_suffix(member)))
            assert sha(get(current)) == digests[member], (table, source_id, column, value)
            assert sha(stored[backend.key_of(current)]) == digests[member]
            assert extra["archive_paths"][column] == value
        else:
            about = [
                w
                for w in warnings
                if w["field"] == column and value in w["message"] and (source_id is None or w["record_id"] == source_id)
            ]
            assert about, (table, source_id, column, value)
            assert extra["archive_paths"][column] == value
            if "not in the archive" in about[0]["message"]:
                assert current is None
            else:  # matched by a repair (mis-encoded name, case): the bytes of the member it names
                matched = unicodedata.normalize("NFC", about[0]["message"].split(" matched ")[1].split("'")[1])
                assert sha(get(current)) == digests[matched]
                distinct.add((digests[matched], served_suffix(matched)))
    assert expected_in_zip > 0
    # Every stored object is one a row points at, and nothing else is stored.
    assert set(stored) == {backend.key_of(u) for u in urls.values() if backend.is_stored(u)}
    assert result["media"]["objects"] == len(stored) == len(distinct) == SAMPLE_OBJECTS[name]
    assert result["media"]["missing"] == sum(1 for w in warnings if "is not in the archive" in w["message"])


# ---------------------------------------------------------------------------
# Re-imports: nothing uploaded twice, removed media deleted after the commit


def test_reimport_uploads_nothing_twice_and_deletes_what_was_removed(db_url, backend, tmp_path):
    files = media_event()
    path = write_zip(tmp_path / "conf.zip", files)
    code, first = import_archive(path, db_url)
    assert code == 0, first
    writes = backend.writes()
    before = stored_urls(db_url)
    assert writes == len(COLUMNS)

    # Same archive, forced through the whole pipeline: not one upload.
    code, forced = import_archive(path, db_url, "--force")
    assert code == 0, forced
    assert forced["media"]["uploaded"] == 0 and forced["media"]["reused"] == len(COLUMNS)
    assert backend.writes() == writes
    assert stored_urls(db_url) == before

    # New bytes for one photo, a sponsor logo dropped, the session with the video deleted.
    files = media_event(**{"images/speakers/ann.jpg": blob("ann v2")})
    del files["sponsors"][0]["logo-url"]
    files["sessions"] = [s for s in files["sessions"] if s["id"] != 2]
    code, second = import_archive(write_zip(tmp_path / "v2" / "conf.zip", files), db_url)
    assert code == 0, second
    assert second["media"]["uploaded"] == 1  # only the changed photo
    assert backend.writes() == writes + 1
    after = stored_urls(db_url)
    assert get(after[("speakers", "1", "photo_url")]) == blob("ann v2")
    assert ("sponsors", "1", "logo_url") not in after
    assert not any(k[0] == "sessions" and k[1] == "2" for k in after)
    # Objects nobody points at any more are gone; everything pointed at exists.
    stored = backend.objects()
    assert set(stored) == {backend.key_of(u) for u in after.values()}
    assert second["media"]["deleted"] == 3  # old photo, sponsor logo, video
    for url in after.values():
        assert get(url)
    _, _, extra = column_value(db_url, "sponsors", "1", "logo_url")
    assert "archive_paths" not in extra


def test_unchanged_archive_is_a_no_op_for_media(backend, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    path = write_zip(tmp_path / "conf.zip", media_event())
    assert import_archive(path, url)[0] == 0
    stored = backend.objects()

    def untouchable(*args, **kwargs):
        raise AssertionError("storage used for an unchanged archive")

    for cls in (LocalStorage, S3Storage):
        for method in ("list", "put", "delete"):
            monkeypatch.setattr(cls, method, untouchable)
    code, again = import_archive(path, url)
    assert code == 0, again
    assert again["unchanged_archive"] is True
    assert again["media"]["uploaded"] == again["media"]["objects"] == 0
    monkeypatch.undo()
    assert backend.objects() == stored


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_media_only_change_updates_rows_in_the_same_commit(db_url, backend, tmp_path):
    """The JSON is identical, only a file's bytes changed: the row is 'unchanged' but its URL moves on."""
    code, first = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 0, first
    files = media_event(**{"images/logo.png": blob("logo v2")})
    code, second = import_archive(write_zip(tmp_path / "v2" / "conf.zip", files), db_url)
    assert code == 0, second
    assert second["diff"]["updated"] == 0  # no record changed ...
    _, value, extra = column_value(db_url, "events", None, "logo_url")
    assert get(value) == blob("logo v2")  # ... but the logo's URL did
    assert extra["archive_paths"]["logo_url"] == "/images/logo.png"
    assert len(backend.objects()) == len(COLUMNS)


# ---------------------------------------------------------------------------
# Names: Unicode normalisation forms, missing files


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unicode_names_match_in_either_normalisation_form(db_url, backend, tmp_path):
    nfc, nfd = "Fran\u00e7ois.jpg", "Ren\u0065\u0301e.png"
    assert unicodedata.normalize("NFC", nfd) != nfd
    files = kebab_event()
    files["speakers"][0]["photo-url"] = f"/images/speakers/{nfc}"  # JSON NFC, zip NFD
    files["speakers"][2]["photo-url"] = f"images/speakers/{nfd}"  # JSON NFD, zip NFC
    files[f"images/speakers/{unicodedata.normalize('NFD', nfc)}"] = blob("francois")
    files[f"images/speakers/{unicodedata.normalize('NFC', nfd)}"] = blob("renee")
    code, result = import_archive(write_zip(tmp_path / "conf.zip", files), db_url)
    assert code == 0, result
    assert not [w for w in result["warnings"] if w["field"] == "photo_url"]
    photos = stored_urls(db_url)
    assert get(photos[("speakers", "1", "photo_url")]) == blob("francois")
    assert get(photos[("speakers", "3", "photo_url")]) == blob("renee")
    _, _, extra = column_value(db_url, "speakers", "3", "photo_url")
    assert extra["archive_paths"]["photo_url"] == f"images/speakers/{nfd}"  # exactly as the archive wrote it


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_missing_file_warns_naming_record_and_path(db_url, backend, tmp_path):
    files = media_event(**{"images/speakers/ann.jpg": None, "audio/opening.mp3": None})
    code, result = import_archive(write_zip(tmp_path / "conf.zip", files), db_url)
    assert code == 0, result
    missing = {(w["file"], w["record_id"], w["field"]): w["message"] for w in result["warnings"]}
    assert "'/images/speakers/ann.jpg' is not in the archive" in missing[("speakers", "1", "photo_url")]
    assert "'audio/opening.mp3' is not in the archive" in missing[("sessions", "1", "audio_url")]
    for table, column, value in (
        ("speakers", "photo_url", "/images/speakers/ann.jpg"),
        ("sessions", "audio_url", "audio/opening.mp3"),
    ):
        _, current, extra = column_value(db_url, table, "1", column)
        assert current is None
        assert extra["archive_paths"][column] == value
    assert result["media"]["missing"] == 2
    assert len(backend.objects()) == len(COLUMNS) - 2
    job_warnings = scalar(db_url, "select warnings from import_jobs")
    job_warnings = job_warnings if isinstance(job_warnings, list) else json.loads(job_warnings)
    assert any(w["field"] == "photo_url" and "/images/speakers/ann.jpg" in w["message"] for w in job_warnings)
