"""Media storage itself: only its own keys, the settings described once, no stray temporary files."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from archives import write_zip
from conftest import import_archive
from media_archives import (
    COLUMNS,
    blob,
    fail_after_writing,
    media_event,
    sha,
)

from event_pipeline.definitions import defs
from event_pipeline.media import spool as media_spool
from event_pipeline.media.local_storage import LocalStorage
from event_pipeline.media.s3_storage import S3Storage
from event_pipeline.media.storage import StorageError, valid_key

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
    big = {"videos/deep dive.webm": blob("big video", media_spool.SPOOL_MEMORY + 1)}
    path = write_zip(tmp_path / "archives" / "conf.zip", media_event(**big))
    spooled: list[str] = []
    for cls in (LocalStorage, S3Storage):

        def put(self, key, data, size, sha256, content_type, real=cls.put):
            if size > media_spool.SPOOL_MEMORY:
                spooled.extend(open_files_under(scratch))
                if outcome == "upload fails":
                    raise StorageError("injected: the store refused the big file")
            return real(self, key, data, size, sha256, content_type)

        monkeypatch.setattr(cls, "put", put)
    if outcome == "publish fails":
        fail_after_writing(monkeypatch)
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
