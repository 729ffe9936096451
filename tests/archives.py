"""Building small archives for tests, in any dialect or state of brokenness."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any


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
