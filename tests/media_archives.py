"""Test helpers for media: a small archive with a file in every media column, and reading back what was stored.

- ``media_event()``: an archive's JSON documents whose every media column names a file of
  ``MEDIA_FILES`` (member -> bytes); ``COLUMNS``: (table, source id, column) -> archive value;
- ``expected_key``: the content address a member's bytes must be stored under, derived from the
  database's namespace and the bytes, not from the importer;
- ``check_media_stored``: every column's stored URL leads to the member's exact bytes;
- ``fail_after_writing``: the publish step fails after all its writes;
- ``references``: (table, source id, column, value) of every media value in an archive's JSON.
"""

from __future__ import annotations

import hashlib
import json
import random
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from archives import kebab_event
from conftest import Backend, rows, scalar
from expectations import _id, read_documents

from event_pipeline.importer import publishing

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


def fail_after_writing(monkeypatch):
    """The import's publish writes everything, then fails (before the commit)."""
    real = publishing.publish

    def publish_then_fail(conn, plans, sha256, rows, before_commit=None):
        real(conn, plans, sha256, rows, before_commit=before_commit)
        raise RuntimeError("injected failure after all writes")

    monkeypatch.setattr(publishing, "publish", publish_then_fail)


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
