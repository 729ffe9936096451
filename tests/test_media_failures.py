"""Media when an import fails: its uploads removed, the database untouched, the S3 endpoint going away.

What is stored is read back from the real local folder or S3 endpoint (moto's server on loopback).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from archives import write_zip
from conftest import dump, import_archive, rows, scalar
from media_archives import (
    COLUMNS,
    MEDIA_FILES,
    blob,
    fail_after_writing,
    get,
    media_event,
    stored_urls,
)
from processes import LoopbackProxy

from event_pipeline.assets import ARCHIVES
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.importer import publishing
from event_pipeline.media.local_storage import LocalStorage
from event_pipeline.media.s3_storage import S3Storage
from event_pipeline.media.storage import StorageError

# ---------------------------------------------------------------------------
# Failures: uploads removed, the database untouched


def test_failed_import_removes_its_uploads(db_url, backend, tmp_path, monkeypatch):
    fail_after_writing(monkeypatch)
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
    fail_after_writing(monkeypatch)
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
        fail_after_writing(monkeypatch)
        run_config = {"ops": {"archive": {"config": {"path": path, "force": False}}}}
        job = dg.reconstructable(_import_job)
        with dg.execute_job(job, instance, run_config=run_config, tags={"dagster/partition": "conf"}) as first:
            assert not first.success
        assert backend.objects() == {}
        monkeypatch.setattr(publishing, "publish", _REAL_PUBLISH)
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


_REAL_PUBLISH = publishing.publish


def _import_job():
    return defs.resolve_job_def(IMPORT_JOB_NAME)
