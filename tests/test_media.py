"""Media copied to storage: local folder and a real S3 HTTP endpoint (moto's server on loopback).

Every check reads what is really stored (files, S3 objects through boto3, the
stored URLs fetched over file:// or HTTP) and the rows really in the database,
and compares bytes by sha256 with the zip's members.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import logging
import os
import random
import tempfile
import threading
import time
import unicodedata
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from archives import kebab_event, write_zip
from conftest import GOOD_SAMPLES, Backend, dump, import_archive, rows, sample, scalar
from expectations import _id, read_documents
from processes import LoopbackProxy

from event_pipeline import importer
from event_pipeline.assets import ARCHIVES
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.media import fetch as fetch_module
from event_pipeline.media import upload as media_plan
from event_pipeline.media.storage import LocalStorage, S3Storage, StorageError, valid_key

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> bytes:
    """What a stored URL leads to: a file:// URL's file, an http:// URL's response body."""
    with NO_PROXY.open(url, timeout=30) as response:
        return response.read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extra_of(value: Any) -> dict:
    return value if isinstance(value, dict) else json.loads(value or "{}")


# ---------------------------------------------------------------------------
# A small archive with a file in every media column


def blob(name: str, size: int = 3000) -> bytes:
    return random.Random(name).randbytes(size)


MEDIA_FILES = {
    "images/logo.png": blob("logo"),
    "images/background.jpg": blob("background", 5000),
    "images/sponsors/acme.png": blob("acme"),
    "images/speakers/ann.jpg": blob("ann"),
    "images/tracks/main.svg": blob("track"),
    "slides/opening.pdf": blob("slides", 70_000),
    "audio/opening.mp3": blob("audio", 90_000),
    "videos/deep dive.webm": blob("video", 120_000),
}

# (table, source id, column) -> archive value, and the member it names
COLUMNS = {
    ("events", None, "logo_url"): "/images/logo.png",
    ("events", None, "original_image_url"): "images/background.jpg",
    ("sponsors", "1", "logo_url"): "/images/sponsors/acme.png",
    ("speakers", "1", "photo_url"): "/images/speakers/ann.jpg",
    ("tracks", "1", "track_image_url"): "/images/tracks/main.svg",
    ("sessions", "1", "slides_url"): "/slides/opening.pdf",
    ("sessions", "1", "audio_url"): "audio/opening.mp3",
    ("sessions", "2", "video_url"): "/videos/deep dive.webm",
}
# The suffixes kept in keys (served types); anything else (here the track's .svg) is stored without one.
SERVED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".mp3", ".webm", ".mp4", ".pptx", ".ppt", ".odp", ".key"}


def namespace(db_url: str) -> str:
    """The database's media namespace, read from the database itself."""
    value = scalar(db_url, "select media_namespace from database_identity")
    assert value and value.startswith("db-") and len(value) == 19, value
    return value


def served_suffix(member: str) -> str:
    suffix = Path(member).suffix.lower()
    return suffix if suffix in SERVED_SUFFIXES else ""


def expected_key(db_url: str, event_id: int, member: str, data: bytes) -> str:
    """Content-addressed within the database's namespace and the event."""
    return f"{namespace(db_url)}/events/{event_id}/{sha(data)}{served_suffix(member)}"


def media_event(**media_overrides: bytes | None) -> dict[str, Any]:
    files = kebab_event()
    files["event"]["logo-url"] = "/images/logo.png"
    files["event"]["original-image-url"] = "images/background.jpg"
    files["tracks"][0]["track-image-url"] = "/images/tracks/main.svg"
    files["sessions"][0]["slides-url"] = "/slides/opening.pdf"
    files["sessions"][0]["audio-url"] = "audio/opening.mp3"
    files["sessions"][1]["video-url"] = "/videos/deep dive.webm"
    media = {**MEDIA_FILES, **media_overrides}
    files.update({name: data for name, data in media.items() if data is not None})
    return files


def column_value(url: str, table: str, source_id: str | None, column: str) -> tuple[int, Any, dict]:
    where = "id = (select max(id) from events)" if table == "events" else "source_id = :s"
    found = rows(url, f"select id, {column}, extra from {table} where {where}", s=source_id)
    assert len(found) == 1, (table, source_id)
    row_id, value, extra = found[0]
    return row_id, value, extra_of(extra)


def stored_urls(url: str) -> dict[tuple[str, str, str], str]:
    """Every media column value of every row, by (table, source id, column)."""
    out = {}
    for table, columns in {
        "events": ("logo_url", "original_image_url"),
        "sponsors": ("logo_url",),
        "speakers": ("photo_url",),
        "tracks": ("track_image_url",),
        "sessions": ("slides_url", "audio_url", "video_url"),
    }.items():
        for source_id, *values in rows(url, f"select source_id, {', '.join(columns)} from {table}"):
            for column, value in zip(columns, values, strict=True):
                if value is not None:
                    out[(table, source_id, column)] = value
    return out


# ---------------------------------------------------------------------------
# Byte-exact copies and URL rewriting in every column


def test_every_media_column_is_stored_byte_exact_and_rewritten(db_url, backend, tmp_path):
    path = write_zip(tmp_path / "conf.zip", media_event())
    code, result = import_archive(path, db_url)
    assert code == 0, result
    stored = check_media_stored(db_url, backend, result["result"]["id"], path)
    assert len(stored) == result["media"]["objects"] == result["media"]["uploaded"]
    assert result["media"]["bytes"] == sum(len(b) for b in MEDIA_FILES.values())


def check_media_stored(db_url: str, backend: Backend, event_id: int, path: Path) -> dict[str, bytes]:
    """The event imported from a ``media_event()`` archive: every media column holds a stored URL that leads
    to the member's exact bytes, under its content address, the archive's value is kept in ``extra``, and
    nothing else is stored. Returns the stored objects."""
    stored = backend.objects()
    assert len(stored) == len(COLUMNS)
    for (table, source_id, column), archive_value in COLUMNS.items():
        _row_id, value, extra = column_value(db_url, table, source_id, column)
        member = archive_value.lstrip("/")
        digest = sha(MEDIA_FILES[member])
        # The column holds the stored URL, the URL leads to the exact bytes, the key is the content address.
        assert get(value) == MEDIA_FILES[member], (table, column)
        key = backend.key_of(value)
        assert key == expected_key(db_url, event_id, member, MEDIA_FILES[member])
        assert sha(stored[key]) == digest
        assert extra["archive_paths"][column] == archive_value  # the original is kept
    # Nothing else in the storage, and the stored bytes are the zip's.
    with zipfile.ZipFile(path) as zf:
        members = {sha(zf.read(n)) for n in MEDIA_FILES}
    assert {sha(b) for b in stored.values()} == members
    return stored


# ---------------------------------------------------------------------------
# Every sample archive, both backends


JSON_FIELDS = {  # table -> column -> the JSON keys (folded) the samples use for it
    "events": {
        "logo_url": ("logo", "logo_url"),
        "original_image_url": ("background_image", "background_url", "original_image_url"),
    },
    "sponsors": {"logo_url": ("logo", "logo_url")},
    "speakers": {"photo_url": ("photo", "photo_url")},
    "tracks": {"track_image_url": ("track_image_url", "image_url", "track_image")},
    "sessions": {
        "slides_url": ("slides", "slides_url"),
        "audio_url": ("audio", "audio_url"),
        "video_url": ("video", "video_url"),
    },
}


def references(path: Path) -> list[tuple[str, str | None, str, str]]:
    """(table, source id, column, value) of every non-empty media value in the archive's JSON."""
    docs = read_documents(path)
    found = []
    for table, fields in JSON_FIELDS.items():
        records = [docs["event"]] if table == "events" else docs.get(table, [])
        for record in records:
            folded = {k.replace("-", "_").lower(): v for k, v in record.items()}
            for column, names in fields.items():
                value = next((folded[n] for n in names if folded.get(n) not in (None, "")), None)
                if value is not None:
                    found.append((table, None if table == "events" else _id(record), column, value))
    return found


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
# Failures: uploads removed, the database untouched


def _fail_after_writing(monkeypatch):
    real = importer.publish

    def publish_then_fail(conn, plans, sha256, before_commit=None):
        real(conn, plans, sha256, before_commit=before_commit)
        raise RuntimeError("injected failure after all writes")

    monkeypatch.setattr(importer, "publish", publish_then_fail)


def test_failed_import_removes_its_uploads(db_url, backend, tmp_path, monkeypatch):
    _fail_after_writing(monkeypatch)
    code, result = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 1 and "injected failure" in result["error"]
    assert backend.objects() == {}
    if backend.kind == "s3":
        assert backend.writes() == len(COLUMNS)  # they had been uploaded, then removed
    assert scalar(db_url, "select count(*) from events") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_failed_reimport_keeps_the_committed_objects(db_url, backend, tmp_path, monkeypatch):
    code, first = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 0, first
    before, objects = stored_urls(db_url), backend.objects()
    _fail_after_writing(monkeypatch)
    files = media_event(**{"images/speakers/ann.jpg": blob("ann v2"), "audio/opening.mp3": blob("audio v2")})
    code, result = import_archive(write_zip(tmp_path / "v2" / "conf.zip", files), db_url)
    assert code == 1
    assert stored_urls(db_url) == before
    assert backend.objects() == objects  # the new ones removed, the committed ones untouched
    for url in before.values():
        assert get(url)


def test_broken_upload_fails_the_import_and_removes_partial_uploads(db_url, tmp_path, monkeypatch):
    root = tmp_path / "media"
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_ROOT", str(root))
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_CONCURRENCY", "1")
    real, calls = LocalStorage.put, []

    def flaky_put(self, key, data, size, sha256, content_type):
        calls.append(key)
        if len(calls) == 4:
            raise StorageError("disk on fire")
        return real(self, key, data, size, sha256, content_type)

    monkeypatch.setattr(LocalStorage, "put", flaky_put)
    code, result = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 1
    assert result["state"] == "FAILURE"
    assert "cannot store media" in result["error"] and "disk on fire" in result["error"]
    error = result["errors"][0]
    assert error["file"] and error["record_id"] and error["field"]  # names the record and column
    assert len(calls) >= 4
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert scalar(db_url, "select count(*) from events") == 0
    assert rows(db_url, "select state from import_jobs") == [("FAILURE",)]


# ---------------------------------------------------------------------------
# The S3 endpoint goes away in the middle of an import

RESTORE_AFTER = 1.0  # seconds between the first failed storage call and the endpoint coming back


@pytest.fixture
def s3_proxy(backend, monkeypatch) -> LoopbackProxy:
    """The imports' S3 endpoint: a proxy we can cut, in front of the backend's moto server (which the checks
    read directly). Uploads go one at a time, and a refused connection is retried once, not four times."""
    proxy = LoopbackProxy(urllib.parse.urlsplit(backend.client.meta.endpoint_url).port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_CONCURRENCY", "1")
    yield proxy
    proxy.close()


def cut_after_uploads(proxy: LoopbackProxy, monkeypatch, uploads: int, restore: bool = True) -> list[str]:
    """Cut the endpoint right after the ``uploads``-th object is stored; bring it back (``restore``) shortly
    after the first upload or listing that then fails, so only the failed import's cleanup can reach it again.
    Returns the keys stored."""
    stored: list[str] = []
    failed: list[str] = []

    def watch(method: str) -> None:
        real = getattr(S3Storage, method)

        def call(self, *args, **kwargs):
            try:
                result = real(self, *args, **kwargs)
            except StorageError:
                if proxy.is_cut and restore and not failed:
                    failed.append(method)
                    proxy.restore_in(RESTORE_AFTER)
                raise
            if method == "put":
                stored.append(args[0])
                if len(stored) == uploads:
                    proxy.cut()
            return result

        monkeypatch.setattr(S3Storage, method, call)

    watch("put")
    watch("list")
    return stored


NOT_IMPORT_DATA = ("import_jobs", "id_blocks")  # a failure adds its FAILURE row; reserved ids stay reserved


@pytest.mark.parametrize("when", ["mid-upload", "after-uploads"])
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_going_away_fails_the_import_and_its_uploads_are_removed(db_url, backend, s3_proxy, tmp_path, when, caplog):
    """The endpoint goes away after some uploads, or after all of them (before the commit): the import fails
    naming the store and the endpoint, the database is as it was, and the objects this run uploaded are gone
    once the endpoint is back. For a new event and for a changed archive over an existing one."""
    other = write_zip(tmp_path / "other.zip", media_event())  # another event, whose objects must stay
    assert import_archive(other, db_url)[0] == 0

    def fails_cleanly(path: Path, cut_after: int) -> None:
        tables, jobs = dump(db_url, *NOT_IMPORT_DATA), rows(db_url, "select run_id, state from import_jobs")
        objects, writes = backend.objects(), backend.writes()
        caplog.clear()
        caplog.set_level(logging.INFO, logger="event_pipeline.media")
        with pytest.MonkeyPatch.context() as patch:
            stored = cut_after_uploads(s3_proxy, patch, cut_after)
            code, result = import_archive(path, db_url)
        retried = [r for r in caplog.records if "could not remove this import's uploads yet" in r.getMessage()]
        assert retried, "the cleanup never met the unreachable endpoint"
        assert code == 1 and result["state"] == "FAILURE"
        assert s3_proxy.url in result["error"] and f"s3://{backend.bucket}/media/" in result["error"], result
        assert len(stored) == cut_after and backend.writes() == writes + cut_after  # really uploaded, ...
        assert backend.objects() == objects  # ... and really removed
        assert dump(db_url, *NOT_IMPORT_DATA) == tables
        new_jobs = [job for job in rows(db_url, "select run_id, state, error from import_jobs") if job[:2] not in jobs]
        assert [(state, error) for _, state, error in new_jobs] == [("FAILURE", result["error"])]

    conf = tmp_path / "conf.zip"
    fails_cleanly(write_zip(conf, media_event()), 3 if when == "mid-upload" else len(COLUMNS))
    code, first = import_archive(conf, db_url)  # the endpoint is back: the same archive imports
    assert code == 0, first
    changed = {k: blob(f"{k} v2") for k in ("images/logo.png", "images/speakers/ann.jpg", "audio/opening.mp3")}
    v2 = write_zip(tmp_path / "v2" / "conf.zip", media_event(**changed))
    fails_cleanly(v2, 2 if when == "mid-upload" else len(changed))  # only the changed files are uploaded
    assert len(backend.objects()) == 2 * len(COLUMNS)  # both committed events' objects, nothing else
    for url in stored_urls(db_url).values():
        assert get(url)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_gone_too_long_names_the_objects_left(db_url, backend, s3_proxy, tmp_path, monkeypatch, caplog):
    """The endpoint stays away: the failed import stops retrying its cleanup after
    EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS, and one warning names exactly the objects it left behind."""
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS", "2")
    stored = cut_after_uploads(s3_proxy, monkeypatch, 3, restore=False)
    started = time.monotonic()
    code, result = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 1 and s3_proxy.url in result["error"]
    assert time.monotonic() - started < 30
    [warning] = [r.getMessage() for r in caplog.records if "left behind" in r.getMessage()]
    assert f"s3://{backend.bucket}/media/" in warning
    named = set(warning.split("left behind: ")[1].split(", "))
    assert named == set(stored) == set(backend.objects())  # what an operator has to remove by hand
    assert scalar(db_url, "select count(*) from events") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_missing_bucket_is_a_clear_error(db_url, backend, tmp_path, monkeypatch):
    if backend.kind != "s3":
        monkeypatch.setenv("EVENT_PIPELINE_MEDIA_ROOT", str(tmp_path / "a-file"))
        (tmp_path / "a-file").write_text("not a folder")
    else:
        monkeypatch.setenv("EVENT_PIPELINE_MEDIA_URL", "s3://no-such-bucket-here/media")
    code, result = import_archive(write_zip(tmp_path / "conf.zip", media_event()), db_url)
    assert code == 1
    expected = "NoSuchBucket" if backend.kind == "s3" else "a-file"
    assert expected in result["error"], result["error"]
    assert scalar(db_url, "select count(*) from events") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reexecution_after_a_failed_publish_stores_the_objects_again(db_url, backend, tmp_path, monkeypatch):
    """The failed run removed its uploads; re-executing only import_result must put them back first."""
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    path = str(write_zip(tmp_path / "conf.zip", media_event()))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(ARCHIVES.name, ["conf"])
        _fail_after_writing(monkeypatch)
        run_config = {"ops": {"archive": {"config": {"path": path, "force": False}}}}
        job = dg.reconstructable(_import_job)
        with dg.execute_job(job, instance, run_config=run_config, tags={"dagster/partition": "conf"}) as first:
            assert not first.success
        assert backend.objects() == {}
        monkeypatch.setattr(importer, "publish", _REAL_PUBLISH)
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance, tags={"dagster/partition": "conf"}, reexecution_options=options) as second:
            assert second.success
            steps = {e.step_key for e in second.all_events if e.event_type_value == "STEP_SUCCESS"}
            assert "import_result" in steps and "media" not in steps  # only the failed step (and its checks)
    urls = stored_urls(db_url)
    assert len(urls) == len(COLUMNS)
    for (table, source_id, column), url in urls.items():
        archive_value = COLUMNS[(table, None if table == "events" else source_id, column)]
        assert get(url) == MEDIA_FILES[archive_value.lstrip("/")]


_REAL_PUBLISH = importer.publish


def _import_job():
    return defs.resolve_job_def(IMPORT_JOB_NAME)


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


# ---------------------------------------------------------------------------
# No server-side request forgery


class Recorder:
    """A loopback HTTP server that records every request and serves fixed bytes."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None):
        self.requests: list[str] = []
        self.routes = routes or {}
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                recorder.requests.append(self.path)
                status, headers, body = recorder.routes.get(self.path, (200, {}, b"served"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    servers: list[Recorder] = []

    def make(routes=None) -> Recorder:
        servers.append(Recorder(routes))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _url_archive(tmp_path: Path, urls: dict[str, str]) -> Path:
    files = media_event()
    files["speakers"][0]["photo-url"] = urls["photo"]
    files["sponsors"][0]["logo-url"] = urls["logo"]
    files["sessions"][0]["slides-url"] = urls["slides"]
    return write_zip(tmp_path / "conf.zip", files)


@pytest.mark.parametrize(
    "allowed", ["", "127.0.0.1:{port}, localhost:{port}", "127.0.0.1:{port} localhost:{port} [::1]:{port}"]
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_archive_urls_are_never_requested_from_loopback(db_url, backend, tmp_path, monkeypatch, recorder, allowed):
    server = recorder()
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", allowed.format(port=server.port))
    urls = {
        "photo": server.url("/photo.jpg"),
        "logo": server.url("/logo.png", host="localhost"),
        "slides": f"http://[::1]:{server.port}/slides.pdf",
    }
    code, result = import_archive(_url_archive(tmp_path, urls), db_url)
    assert code == 0, result
    assert server.requests == []  # not one request reached the loopback server
    assert column_value(db_url, "speakers", "1", "photo_url")[1] == urls["photo"]
    assert column_value(db_url, "sponsors", "1", "logo_url")[1] == urls["logo"]
    assert column_value(db_url, "sessions", "1", "slides_url")[1] == urls["slides"]
    assert result["media"]["fetched"] == 0
    if allowed:
        refused = [w for w in result["warnings"] if "non-public address" in w["message"]]
        assert {w["field"] for w in refused} >= {"photo_url", "logo_url"}
    else:
        assert result["media"]["kept_urls"] == 3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_listed_host_is_fetched_with_limits(db_url, backend, tmp_path, monkeypatch, recorder):
    """With the address check relaxed for loopback only (the test's stand-in for a public host)."""
    other = recorder()
    photo = blob("remote photo", 4000)
    server = recorder(
        {
            "/photo.jpg": (200, {"Content-Type": "image/jpeg"}, photo),
            "/moved.png": (302, {"Location": "/photo.jpg"}, b""),
            "/away.pdf": (302, {"Location": other.url("/slides.pdf", host="localhost")}, b""),
        }
    )
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", f"127.0.0.1:{server.port}")
    urls = {"photo": server.url("/photo.jpg"), "logo": server.url("/moved.png"), "slides": server.url("/away.pdf")}
    code, result = import_archive(_url_archive(tmp_path, urls), db_url)
    assert code == 0, result
    _, photo_url, extra = column_value(db_url, "speakers", "1", "photo_url")
    assert get(photo_url) == photo and extra["archive_paths"]["photo_url"] == urls["photo"]
    assert backend.key_of(photo_url).endswith(f"/{sha(photo)}.jpg")
    assert get(column_value(db_url, "sponsors", "1", "logo_url")[1]) == photo  # same-host redirect followed
    assert column_value(db_url, "sessions", "1", "slides_url")[1] == urls["slides"]  # other host: kept
    assert other.requests == []
    assert [w for w in result["warnings"] if "redirected to another host" in w["message"]]
    assert result["media"]["fetched"] == 2
    assert sorted(server.requests) == sorted(["/photo.jpg", "/moved.png", "/photo.jpg", "/away.pdf"])


def test_fetch_policy_and_limits(recorder, monkeypatch):
    policy = fetch_module.FetchPolicy(frozenset({"media.example.org", "cdn.example.org:8443"}))
    assert policy.allows("https://media.example.org/a.jpg")
    assert policy.allows("http://MEDIA.example.org./a.jpg")
    assert not policy.allows("https://media.example.org:8080/a.jpg")  # other port
    assert policy.allows("https://cdn.example.org:8443/a.jpg")
    assert not policy.allows("https://cdn.example.org/a.jpg")
    assert not policy.allows("ftp://media.example.org/a.jpg")
    assert not policy.allows("https://user:pw@media.example.org/a.jpg")
    assert not policy.allows("https://evil.example.org/a.jpg")
    assert not policy.allows("file:///etc/passwd")
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "fe80::1",
                    "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1", "fc00::1"):  # fmt: skip
        assert fetch_module.blocked_address(address), address
    assert not fetch_module.blocked_address("93.184.216.34")
    assert not fetch_module.blocked_address("2606:2800:220:1:248:1893:25c8:1946")

    big = recorder({"/big.bin": (200, {}, b"x" * 5000)})
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    small = fetch_module.FetchPolicy(frozenset({f"127.0.0.1:{big.port}"}), max_bytes=1000)
    with pytest.raises(fetch_module.FetchError, match="limit of 1000"):
        fetch_module.fetch(big.url("/big.bin"), small, io.BytesIO())


def test_fetch_gives_up_after_the_time_limit(monkeypatch):
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def trickle():
        conn, _ = listener.accept()
        conn.recv(1000)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    policy = fetch_module.FetchPolicy(frozenset({f"127.0.0.1:{port}"}), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(fetch_module.FetchError, match="timed out|timeout"):
        fetch_module.fetch(f"http://127.0.0.1:{port}/slow", policy, io.BytesIO())
    assert time.monotonic() - started < 5
    listener.close()


# ---------------------------------------------------------------------------
# Keys and URLs


def test_storage_only_accepts_its_own_keys(tmp_path):
    storage = LocalStorage(tmp_path / "m", "https://cdn.example.org/media")
    ns = "db-0123456789abcdef"
    key = f"{ns}/events/3/" + "a" * 64 + ".jpg"
    assert storage.key_for_url(storage.url(key)) == key
    assert storage.url(key) == "https://cdn.example.org/media/" + key
    for url in (
        f"https://cdn.example.org/media/{ns}/events/3/../../etc/passwd",
        f"https://cdn.example.org/media/{ns}/events/3/notahash.jpg",
        "https://cdn.example.org/media/events/3/" + "a" * 64 + ".jpg",  # no namespace: not this pipeline's
        "https://cdn.example.org/media/db-0123/events/3/" + "a" * 64,  # not a namespace
        f"https://cdn.example.org/other/{ns}/events/3/" + "a" * 64,
        "https://elsewhere.example.org/media/" + key,
    ):
        assert storage.key_for_url(url) is None, url
    with pytest.raises(StorageError):
        storage.delete([f"{ns}/events/3/../../../outside"])
    s3 = S3Storage("bucket", "some/prefix", "https://bucket.example.org")
    assert s3.key_for_url(s3.url(key)) == key
    assert s3.url(key) == "https://bucket.example.org/some/prefix/" + key


def test_media_settings_are_described_once_in_the_catalog():
    from event_pipeline.model.catalog import MEDIA_MODELS
    from event_pipeline.model.records import EventRecord, SessionRecord, SpeakerRecord, SponsorRecord, TrackRecord

    columns = {(spec.table, media.column) for spec in MEDIA_MODELS for media in spec.media}
    assert columns == {
        ("events", "logo_url"),
        ("events", "original_image_url"),
        ("sponsors", "logo_url"),
        ("speakers", "photo_url"),
        ("tracks", "track_image_url"),
        ("sessions", "slides_url"),
        ("sessions", "audio_url"),
        ("sessions", "video_url"),
    }
    for record, column in (
        (EventRecord, "logo_url"),
        (SponsorRecord, "logo_url"),
        (SpeakerRecord, "photo_url"),
        (TrackRecord, "track_image_url"),
        (SessionRecord, "video_url"),
    ):
        assert column in record.model_fields
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("media")).parent_keys}
    assert parents == {"sessions"}  # the end of the model chain; the plans come from the IO manager
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("import_result")).parent_keys} == {"media"}


def test_no_stray_temporary_files(tmp_path):
    storage = LocalStorage(tmp_path / "m")
    data = b"payload"
    key = f"db-0123456789abcdef/events/1/{sha(data)}.png"

    storage.put(key, io.BytesIO(data), len(data), sha(data), "image/png")
    with pytest.raises(StorageError):
        storage.put(key, io.BytesIO(data), len(data) + 1, sha(data), "image/png")  # short read detected
    assert [p.name for p in (tmp_path / "m").rglob("*") if p.is_file()] == [f"{sha(data)}.png"]
    assert storage.read(key) == data
    assert storage.list("db-0123456789abcdef/events/1/") == {key: len(data)}
    assert storage.delete([key]) == 1
    assert not (tmp_path / "m" / "db-0123456789abcdef").exists()  # empty folders pruned


def open_files_under(folder: Path) -> list[str]:
    """Files this process has open below ``folder``, unnamed temporary files (``#123 (deleted)``) included."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                found.append(target)
    return found


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("outcome", ["success", "upload fails", "publish fails"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_import_leaves_no_temporary_files(db_url, backend, tmp_path, monkeypatch, outcome, isolated_home):
    """A media file over the in-memory limit goes through a temporary file (in TMPDIR) on its way to storage.
    Whatever the outcome, afterwards none is open or on disk, and the only new files are the database,
    Dagster's run storage and the stored objects."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # moto's server runs in this process: it keeps objects in memory, so every file open in TMPDIR is ours.
    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 << 20))
    big = {"videos/deep dive.webm": blob("big video", media_plan.SPOOL_MEMORY + 1)}
    path = write_zip(tmp_path / "archives" / "conf.zip", media_event(**big))
    spooled: list[str] = []
    for cls in (LocalStorage, S3Storage):

        def put(self, key, data, size, sha256, content_type, real=cls.put):
            if size > media_plan.SPOOL_MEMORY:
                spooled.extend(open_files_under(scratch))
                if outcome == "upload fails":
                    raise StorageError("injected: the store refused the big file")
            return real(self, key, data, size, sha256, content_type)

        monkeypatch.setattr(cls, "put", put)
    if outcome == "publish fails":
        _fail_after_writing(monkeypatch)
    before = files_under(tmp_path)

    code, result = import_archive(path, db_url)
    assert code == (0 if outcome == "success" else 1), result
    assert spooled, "the big file was not spooled to a temporary file in TMPDIR"
    assert open_files_under(scratch) == []
    assert files_under(scratch) == set()
    stored = backend.objects()
    assert all(valid_key(key) for key in stored)  # no temporary file in a local media folder
    assert len(stored) == (len(COLUMNS) if outcome == "success" else 0)
    new = files_under(tmp_path) - before
    media = {backend.root / key for key in stored} if backend.kind == "local" else set()
    database = {p for p in new if p.name in ("events.db", "events.db-wal", "events.db-shm")}  # WAL: engine open
    run_storage = {p for p in new if p.is_relative_to(isolated_home)}  # run and event logs, step outputs
    assert new - media - database - run_storage == set()
