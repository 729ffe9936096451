"""Building small archives for tests, in any dialect or state of brokenness."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

from event_pipeline.read.archive import Limits, read_archive
from event_pipeline.read.normalise import normalise


def write_zip(path: Path, files: dict[str, Any], prefix: str = "") -> Path:
    """Write ``files`` (name -> JSON-able object, or raw bytes/str) as a zip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if isinstance(content, str):
                data = content.encode("utf-8")
            elif isinstance(content, bytes):
                data = content
            else:
                data = json.dumps(content, ensure_ascii=False).encode("utf-8")
            zf.writestr(prefix + name, data)
    return path


def kebab_event(**overrides: Any) -> dict[str, dict | list]:
    """A small but complete kebab-case archive (files without .json)."""
    files: dict[str, Any] = {
        "event": {
            "id": 1,
            "name": "Test Conf",
            "starts-at": "2020-01-01T09:00:00+01:00",
            "ends-at": "2020-01-02T18:00:00+01:00",
            "timezone": "Europe/Berlin",
            "social-links": [{"id": 1, "name": "Web", "link": "https://example.org"}],
        },
        "meta": {"root_url": "https://example.org"},
        "microlocations": [{"id": 1, "name": "Hall A"}, {"id": 2, "name": "Hall B"}],
        "tracks": [{"id": 1, "name": "Main", "color": "#000000"}, {"id": 2, "name": "Side"}],
        "session_types": [{"id": 1, "name": "Talk", "length": "00:30"}],
        "speakers": [
            {"id": 1, "name": "Ann", "photo-url": "/images/speakers/ann.jpg", "sessions": [{"id": 1}]},
            {"id": 2, "name": "Bob", "sessions": []},
            {"id": 3, "name": "Cy", "sessions": [{"id": 2}]},
        ],
        "sponsors": [{"id": 1, "name": "ACME", "type": "Gold", "logo-url": "/images/sponsors/acme.png"}],
        "sessions": [
            {
                "id": 1,
                "title": "Opening",
                "starts-at": "2020-01-01T09:00:00+01:00",
                "track": {"id": 1, "name": "Main"},
                "microlocation": {"id": 1},
                "session-type": {"id": 1, "name": "Talk", "length": "00:30"},
                "speakers": [{"id": 2, "name": "Bob"}],
            },
            {
                "id": 2,
                "title": "Deep dive",
                "track": {"id": 2},
                "microlocation": 2,
                "session-type": {"id": 1},
                "speakers": [],
            },
            {"id": 3, "title": "Closing", "track": None, "microlocation": {}, "speakers": []},
        ],
    }
    files.update(overrides)
    return copy.deepcopy(files)


# A snake_case export (the reference server's current exporter) under a top folder.
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


def zip_with(path, members):
    """members: name -> (bytes or a callable writing into the open member)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {k: json.dumps(v).encode() for k, v in kebab_event().items()}.items():
            zf.writestr(name, data)
        for name, content in members.items():
            if callable(content):
                with zf.open(name, "w", force_zip64=True) as fh:
                    content(fh)
            else:
                zf.writestr(name, content)
    return path


def archive_errors(path, **limits):
    """Every error of reading and normalising (JSON is parsed by the normaliser, on demand)."""
    archive = read_archive(path, Limits(**limits) if limits else Limits())
    if archive.members:
        normalise(archive)
    return " | ".join(str(e) for e in archive.problems.errors)
