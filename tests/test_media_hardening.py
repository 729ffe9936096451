"""Media hardening: bounded storage, media checked at validation, one database's namespace, killed imports swept,
served types from an allow-list.

Expected values are read from the archives' JSON and members here, never from the importer; every check reads what
is really stored (files, S3 objects through boto3) and the rows really in the database.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import unicodedata
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import REPO, Backend, import_archive, rows, run_cli, sample, scalar
from media_archives import (
    COLUMNS,
    MEDIA_FILES,
    blob,
    expected_key,
    get,
    media_event,
    namespace,
    references,
    sha,
    stored_urls,
)

from event_pipeline.db import get_engine
from event_pipeline.media.served_types import OCTET_STREAM, served_type

CLI = str(Path(sys.executable).parent / "event-pipeline")
CASES = Path(os.environ.get("EVENT_PIPELINE_CASES", REPO.parent / "shared" / "cases"))
PHOTO_200 = "hostile/one-media-member-200-references.zip"
ENCRYPTED = "hostile/encrypted-media-member.zip"
MEDIA_WARNINGS_CASE = "fidelity/validate-misses-media-warnings/case.zip"


def case(name: str) -> Path:
    path = CASES / name
    if not path.exists():
        pytest.skip(f"case archive not found: {path}")
    return path


def jobs(url: str) -> list[str]:
    return [state for (state,) in rows(url, "select state from import_jobs order by id")]


def validate(path: Path, url: str, *extra: str) -> tuple[int, dict]:
    code, payload, _ = run_cli("validate", str(path), "--database-url", url, *extra)
    return code, payload


# ---------------------------------------------------------------------------
# One member named by 200 records: one object; the limit counts distinct objects


def test_one_member_named_by_200_records_is_stored_once(db_url, backend):
    path = case(PHOTO_200)
    with zipfile.ZipFile(path) as zf:
        speakers = json.loads(zf.read("speakers"))
        photo = zf.read("images/p.jpg")
    assert len(photo) == 1 << 20 and {s["photo"] for s in speakers} == {"/images/p.jpg"} and len(speakers) == 200

    code, result = import_archive(path, db_url)
    assert code == 0, result
    stored = backend.objects()
    event_id = result["result"]["id"]
    assert stored == {f"{namespace(db_url)}/events/{event_id}/{sha(photo)}.jpg": photo}
    assert backend.writes() == 1  # written once, not 200 times
    urls = rows(db_url, "select source_id, photo_url from speakers")
    assert len(urls) == 200 and len({u for _, u in urls}) == 1
    assert get(urls[0][1]) == photo
    media = result["media"]
    assert (media["objects"], media["bytes"], media["uploaded"], media["bytes_uploaded"]) == (1, 1 << 20, 1, 1 << 20)

    code, again = import_archive(path, db_url, "--force")  # unchanged media: nothing uploaded
    assert code == 0, again
    assert (again["media"]["uploaded"], again["media"]["reused"]) == (0, 1)
    assert backend.writes() == 1 and backend.objects() == stored


def test_media_byte_limit_names_the_setting_in_validate_and_import(db_url, backend, monkeypatch):
    path = case(PHOTO_200)
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEDIA_BYTES", str((1 << 20) - 1))
    code, checked = validate(path, db_url)
    assert code == 1 and checked["state"] == "INVALID"
    code, result = import_archive(path, db_url)
    assert code == 1 and result["state"] == "FAILURE"
    message = (
        "the media to store come to 1048576 bytes (distinct files), over the limit of 1048575 bytes; "
        "raise it with EVENT_PIPELINE_MAX_MEDIA_BYTES"
    )
    # Located at the first field naming the file that goes over the limit: speaker 1's photo.
    expected = [{"file": "speakers", "record_id": "1", "field": "photo_url", "message": message}]
    assert checked["errors"] == expected and result["errors"] == expected
    assert backend.objects() == {} and backend.writes() == 0
    assert scalar(db_url, "select count(*) from events") == 0 and jobs(db_url) == ["FAILURE"]

    # Exactly the size of the one distinct object: 200 references count once.
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEDIA_BYTES", str(1 << 20))
    assert validate(path, db_url)[1]["state"] == "VALID"
    code, result = import_archive(path, db_url)
    assert code == 0, result
    assert len(backend.objects()) == 1


# ---------------------------------------------------------------------------
# Unreadable media members: every one reported, located, by validate and import alike, before any write


def _patch_headers(path: Path, member: str, *, method: int | None = None, flags: int | None = None) -> None:
    """Rewrite a member's compression method or general-purpose flags in both its local and central headers."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    local = info.header_offset
    assert raw[local : local + 4] == b"PK\x03\x04"
    centrals = [i for i in range(len(raw)) if raw[i : i + 4] == b"PK\x01\x02"]
    central = next(i for i in centrals if raw[i + 46 : i + 46 + len(member.encode())] == member.encode())
    if method is not None:
        struct.pack_into("<H", raw, local + 8, method)
        struct.pack_into("<H", raw, central + 10, method)
    if flags is not None:
        struct.pack_into("<H", raw, local + 6, flags)
        struct.pack_into("<H", raw, central + 8, flags)
    path.write_bytes(bytes(raw))


def _broken_media_archive(path: Path) -> Path:
    """A media_event() archive whose logo has a bad CRC, whose speaker photo (named by speakers 1 and 3) uses an
    unsupported compression method, and whose session audio is marked encrypted; every other file is fine."""
    files = media_event()
    files["speakers"][2]["photo-url"] = "images/speakers/ann.jpg"
    broken = {"images/logo.png", "images/speakers/ann.jpg", "audio/opening.mp3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            zf.writestr(name, data, zipfile.ZIP_STORED if name in broken else zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    at = raw.find(MEDIA_FILES["images/logo.png"])
    raw[at + 100] ^= 0xFF  # the stored bytes no longer match their CRC
    path.write_bytes(bytes(raw))
    _patch_headers(path, "images/speakers/ann.jpg", method=97)  # WavPack: not supported
    _patch_headers(path, "audio/opening.mp3", flags=0x1)  # encrypted
    return path


def test_every_unreadable_media_member_is_reported_by_validate_and_import(db_url, backend, tmp_path):
    path = _broken_media_archive(tmp_path / "broken.zip")
    code, checked = validate(path, db_url)
    assert code == 1 and checked["state"] == "INVALID"
    code, result = import_archive(path, db_url)
    assert code == 1 and result["state"] == "FAILURE"
    assert checked["errors"] == result["errors"]
    located = [(e["file"], e["record_id"], e["field"]) for e in result["errors"]]
    assert located == [("event", "1", "logo_url"), ("speakers", "1", "photo_url"), ("sessions", "1", "audio_url")]
    logo, photo, audio = (e["message"] for e in result["errors"])
    assert logo.startswith("media file '/images/logo.png' (zip member 'images/logo.png') cannot be read: Bad CRC-32")
    assert photo.startswith("media file '/images/speakers/ann.jpg' (zip member 'images/speakers/ann.jpg') cannot be")
    assert "compression method" in photo and photo.endswith("; also named by 1 other field")
    assert "(zip member 'audio/opening.mp3')" in audio and "encrypted" in audio
    # Nothing written: no object, no row; the run is closed.
    assert backend.objects() == {} and backend.writes() == 0
    assert scalar(db_url, "select count(*) from events") == 0 and jobs(db_url) == ["FAILURE"]


def test_encrypted_media_member_case(db_url, backend):
    path = case(ENCRYPTED)
    with zipfile.ZipFile(path) as zf:
        encrypted = sorted(i.filename for i in zf.infolist() if i.flag_bits & 0x1)
        event = json.loads(zf.read("event"))
        speakers = json.loads(zf.read("speakers"))
    assert encrypted == ["images/logo.png", "images/speakers/a.jpg"]
    # Where the JSON names them: the event's logo and the photo of the speaker whose photo is a.jpg.
    [speaker] = [s for s in speakers if s["photo"].lstrip("/") in encrypted]
    expected = [
        ("event", str(event["id"]), "logo_url", event["logo"], "images/logo.png"),
        ("speakers", str(speaker["id"]), "photo_url", speaker["photo"], "images/speakers/a.jpg"),
    ]
    code, checked = validate(path, db_url)
    assert code == 1 and checked["state"] == "INVALID"
    code, result = import_archive(path, db_url)
    assert code == 1 and result["state"] == "FAILURE"
    assert checked["errors"] == result["errors"]
    assert len(result["errors"]) == len(expected)
    for error, (file, record_id, field, raw, member) in zip(result["errors"], expected, strict=True):
        assert (error["file"], error["record_id"], error["field"]) == (file, record_id, field)
        assert error["message"] == (
            f"media file {raw!r} (zip member {member!r}) cannot be read: "
            f"File {member!r} is encrypted, password required for extraction"
        )
    assert backend.objects() == {} and scalar(db_url, "select count(*) from events") == 0
    assert jobs(db_url) == ["FAILURE"]


# ---------------------------------------------------------------------------
# validate prints the warnings import gives, media warnings included, and writes nothing


def _nothing_written(backend: Backend) -> None:
    assert backend.objects() == {} and (backend.kind != "s3" or backend.writes() == 0)


@pytest.mark.parametrize("archive", ["case", "FOSSASIASummit2016"])
def test_validate_gives_exactly_the_warnings_import_gives(db_url, backend, tmp_path, archive):
    path = case(MEDIA_WARNINGS_CASE) if archive == "case" else sample(archive)
    code, checked = validate(path, db_url)
    assert code == 0 and checked["state"] == "VALID", checked
    _nothing_written(backend)  # no object, no upload
    assert sa.inspect(get_engine(db_url, create_schema=False)).get_table_names() == []  # not even the schema

    code, result = import_archive(path, db_url)
    assert code == 0, result
    assert checked["warnings"] == result["warnings"]  # the same list, in the same order
    assert checked["counts"] == result["counts"]

    # The media warnings, derived from the JSON and the zip's member names.
    with zipfile.ZipFile(path) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
    nfc = {unicodedata.normalize("NFC", n) for n in names}
    not_exact = [
        (table, source_id, column, value)
        for table, source_id, column, value in references(path)
        if not value.startswith(("http://", "https://")) and unicodedata.normalize("NFC", value.lstrip("/")) not in nfc
    ]
    media_warnings = [w for w in result["warnings"] if w["message"].startswith("media file ")]
    assert len(media_warnings) == len(not_exact) > 0
    if archive == "case":
        assert media_warnings == [
            {
                "file": "event",
                "record_id": "1",
                "field": "logo_url",
                "message": "media file '/images/fossasia-dark.png' is not in the archive; left empty",
            },
            {
                "file": "event",
                "record_id": "1",
                "field": "original_image_url",
                "message": "media file '/images/fossasia16.jpg' is not in the archive; left empty",
            },
            {
                "file": "sponsors",
                "record_id": "1",
                "field": "logo_url",
                "message": "media file '/images/sponsors/Acme_1.png' is not in the archive; left empty",
            },
        ]
        assert rows(db_url, "select logo_url, original_image_url from events") == [(None, None)]


# ---------------------------------------------------------------------------
# Two databases sharing one media folder or bucket


def _second_database(kind: str, tmp_path: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'second.db'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.mark.parametrize("second", ["sqlite", "postgresql"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_databases_sharing_one_media_store_keep_their_objects(
    db_url, second, backend, tmp_path, request, monkeypatch
):
    if backend.kind == "local":  # the default media folder, <data dir>/media, shared by both databases
        monkeypatch.delenv("EVENT_PIPELINE_MEDIA_ROOT")
        backend.root = (Path(os.environ["EVENT_PIPELINE_DATA_DIR"]) / "media").resolve()
    first, other = db_url, _second_database(second, tmp_path, request)
    v1 = write_zip(tmp_path / "v1" / "conf.zip", media_event())
    for url in (first, other):
        code, result = import_archive(v1, url)
        assert code == 0, result
        assert result["result"]["id"] == 1  # the same event id in both: the old layout's collision
    assert namespace(first) != namespace(other)
    other_urls = stored_urls(other)
    other_objects = {k: v for k, v in backend.objects().items() if k.startswith(namespace(other) + "/")}
    assert len(other_objects) == len(COLUMNS)
    assert len(backend.objects()) == 2 * len(COLUMNS)

    # A changed archive into the first database: new logo and photo, the sponsor's logo and session 2 dropped.
    files = media_event(**{"images/logo.png": blob("logo v2"), "images/speakers/ann.jpg": blob("ann v2")})
    del files["sponsors"][0]["logo-url"]
    files["sessions"] = [s for s in files["sessions"] if s["id"] != 2]
    code, changed = import_archive(write_zip(tmp_path / "v2" / "conf.zip", files), first)
    assert code == 0, changed
    assert changed["media"]["deleted"] == 4  # old logo, old photo, sponsor logo, video: all the first's own
    first_objects = {k: v for k, v in backend.objects().items() if k.startswith(namespace(first) + "/")}
    assert set(first_objects) == {backend.key_of(u) for u in stored_urls(first).values()}
    # The other database's objects are all there, byte for byte, and its URLs lead to them.
    assert {k: v for k, v in backend.objects().items() if k.startswith(namespace(other) + "/")} == other_objects
    assert stored_urls(other) == other_urls
    for (table, source_id, column), url in other_urls.items():
        member = COLUMNS[(table, None if table == "events" else source_id, column)].lstrip("/")
        assert get(url) == MEDIA_FILES[member]
    assert len(backend.objects()) == len(other_objects) + len(first_objects)


# ---------------------------------------------------------------------------
# kill -9 between upload and commit: the next import of the key sweeps what was left


def _killed_import(path: Path, url: str, kill_at: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVENT_PIPELINE_TEST_KILL_AT": kill_at, "EVENT_PIPELINE_MEDIA_CONCURRENCY": "1"}
    done = subprocess.run(
        [CLI, "import", str(path), "--database-url", url, *extra], env=env, capture_output=True, timeout=300
    )
    assert done.returncode == -9, done.stderr.decode()[-3000:]  # really killed, at that point
    return done


def test_objects_of_an_import_killed_before_its_commit_are_swept_by_the_next_import(db_url, backend, tmp_path):
    v1 = write_zip(tmp_path / "v1" / "conf.zip", media_event())
    code, first = import_archive(v1, db_url)
    assert code == 0, first
    committed, urls = backend.objects(), stored_urls(db_url)
    changed = {"images/logo.png": blob("logo v2"), "images/speakers/ann.jpg": blob("ann v2")}
    v2 = write_zip(tmp_path / "v2" / "conf.zip", media_event(**changed))

    _killed_import(v2, db_url, "media-stored")
    event_id = first["result"]["id"]
    leftovers = {expected_key(db_url, event_id, member, data) for member, data in changed.items()}
    assert set(backend.objects()) == set(committed) | leftovers  # uploaded, never committed
    assert stored_urls(db_url) == urls and jobs(db_url) == ["SUCCESS", "RUNNING"]
    assert scalar(db_url, "select count(*) from media_claims") == len(COLUMNS) + len(leftovers)

    code, again = import_archive(v1, db_url, "--force")  # the next import of the key
    assert code == 0, again
    assert again["media"]["swept"] == len(leftovers)
    assert backend.objects() == committed and stored_urls(db_url) == urls
    assert jobs(db_url) == ["SUCCESS", "FAILURE", "SUCCESS"]  # the killed run closed as interrupted
    assert scalar(db_url, "select count(*) from media_claims") == 0


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_temporary_file_and_objects_of_a_first_import_killed_mid_upload_are_swept(db_url, backend, tmp_path):
    path = write_zip(tmp_path / "conf.zip", media_event())
    _killed_import(path, db_url, "media-put:3")  # the third upload's temporary file is written
    files = sorted(p for p in backend.root.rglob("*") if p.is_file())
    temporary = [p for p in files if p.name.startswith(".tmp-")]
    assert len(files) == 3 and len(temporary) == 1  # two objects stored, the third half-way
    [orphan_event] = {p.relative_to(backend.root).parts[2] for p in files}
    assert scalar(db_url, "select count(*) from events") == 0

    code, result = import_archive(path, db_url)
    assert code == 0, result
    assert result["media"]["swept"] == 2
    assert str(result["result"]["id"]) != orphan_event  # a fresh id: the killed run's objects were elsewhere
    assert not any(p.name.startswith(".tmp-") for p in backend.root.rglob("*"))
    assert not (backend.root / namespace(db_url) / "events" / orphan_event).exists()
    assert set(backend.objects()) == {backend.key_of(u) for u in stored_urls(db_url).values()}
    assert len(backend.objects()) == len(COLUMNS)


# ---------------------------------------------------------------------------
# Served types: an allow-list


def test_served_types_come_from_an_allow_list(db_url, backend, tmp_path):
    files = kebab_event()
    payloads = {
        "images/logo.png": blob("png"),
        "images/track.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "slides/page.html": b"<html><script>alert(1)</script></html>",
        "slides/deck.pptx": blob("pptx"),
        "audio/run.js": b"alert(1)",
    }
    files["event"]["logo-url"] = "/images/logo.png"
    files["tracks"][0]["track-image-url"] = "/images/track.svg"
    files["sessions"][0]["slides-url"] = "/slides/page.html"
    files["sessions"][1]["slides-url"] = "/slides/deck.pptx"
    files["sessions"][0]["audio-url"] = "/audio/run.js"
    files.update(payloads)
    code, result = import_archive(write_zip(tmp_path / "conf.zip", files), db_url)
    assert code == 0, result
    pptx = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    expected = {  # member -> (key suffix, served type)
        "images/logo.png": (".png", "image/png"),
        "images/track.svg": ("", OCTET_STREAM),
        "slides/page.html": ("", OCTET_STREAM),
        "slides/deck.pptx": (".pptx", pptx),
        "audio/run.js": ("", OCTET_STREAM),
    }
    stored = backend.objects()
    event_id = result["result"]["id"]
    prefix = f"{namespace(db_url)}/events/{event_id}/"
    assert set(stored) == {f"{prefix}{sha(payloads[m])}{suffix}" for m, (suffix, _) in expected.items()}
    for member, (suffix, content_type) in expected.items():
        key = f"{prefix}{sha(payloads[member])}{suffix}"
        assert stored[key] == payloads[member]
        if backend.kind == "s3":
            head = backend.client.head_object(Bucket=backend.bucket, Key=backend.prefix + key)
            assert head["ContentType"] == content_type, member


def test_served_type_allow_list():
    for name, expected in {
        "a.png": (".png", "image/png"),
        "A.JPG": (".jpg", "image/jpeg"),
        "b.jpeg": (".jpeg", "image/jpeg"),
        "c.webp": (".webp", "image/webp"),
        "d.mp3": (".mp3", "audio/mpeg"),
        "e.ogg": (".ogg", "audio/ogg"),
        "f.mp4": (".mp4", "video/mp4"),
        "g.webm": (".webm", "video/webm"),
        "h.pdf": (".pdf", "application/pdf"),
        "i.pptx": (".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        "j.ppt": (".ppt", "application/vnd.ms-powerpoint"),
        "k.odp": (".odp", "application/vnd.oasis.opendocument.presentation"),
        "l.key": (".key", "application/vnd.apple.keynote"),
        "m.svg": ("", OCTET_STREAM),
        "n.html": ("", OCTET_STREAM),
        "o.htm": ("", OCTET_STREAM),
        "p.js": ("", OCTET_STREAM),
        "q.xhtml": ("", OCTET_STREAM),
        "noextension": ("", OCTET_STREAM),
    }.items():
        assert served_type(name) == expected, name
    # A fetched file's declared type counts only if it is on the list.
    assert served_type("/photo", "image/jpeg; charset=binary") == (".jpg", "image/jpeg")
    assert served_type("/page", "text/html") == ("", OCTET_STREAM)
    assert served_type("/x.svg", "image/svg+xml") == ("", OCTET_STREAM)


def test_schema_gives_each_database_its_own_namespace(tmp_path):
    first = get_engine(f"sqlite:///{tmp_path / 'a.db'}")
    second = get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with first.connect() as a, second.connect() as b:
        ns_a = a.execute(sa.text("select media_namespace from database_identity")).scalar_one()
        ns_b = b.execute(sa.text("select media_namespace from database_identity")).scalar_one()
    assert ns_a != ns_b
    get_engine.cache_clear()
    with get_engine(f"sqlite:///{tmp_path / 'a.db'}").connect() as again:  # stable: made once, kept
        assert again.execute(sa.text("select media_namespace from database_identity")).scalar_one() == ns_a
