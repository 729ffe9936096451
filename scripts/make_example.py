"""Write the bundled example archive, ``event_pipeline/examples/example-event.zip``.

A small Open Event export written for this project (not copied from any
real one): kebab-case dialect, files without ``.json``, one speaker photo
and a sponsor logo as media. Deterministic, so the committed zip only
changes when this script does.

    python scripts/make_example.py
"""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "event_pipeline" / "examples" / "example-event.zip"

# A 1x1 PNG, enough to be a real image file.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

EVENT = {
    "id": 1,
    "name": "Example Open Tech Day",
    "starts-at": "2026-06-06T09:00:00+02:00",
    "ends-at": "2026-06-06T18:00:00+02:00",
    "timezone": "Europe/Berlin",
    "location-name": "Community Hall, Example Street 1",
    "latitude": 52.52,
    "longitude": 13.405,
    "description": "A one-day community conference used as the event-pipeline example.",
    "logo-url": "/images/logo.png",
    "organizer-name": "Example Org",
    "privacy": "public",
    "type": "Conference",
    "topic": "Science & Technology",
    "state": "Published",
    "social-links": [
        {"id": 1, "name": "Website", "link": "https://example.org/"},
        {"id": 2, "name": "Mastodon", "link": "https://social.example.org/@tech"},
    ],
    "version": {"event_ver": 1},
}

MICROLOCATIONS = [
    {"id": 1, "name": "Main Hall", "floor": 0, "latitude": None, "longitude": None, "room": None},
    {"id": 2, "name": "Workshop Room", "floor": 1, "latitude": None, "longitude": None, "room": "1.01"},
]
TRACKS = [
    {"id": 1, "name": "Talks", "color": "#3DC8C3", "font-color": "#FFFFFF", "description": "Talks"},
    {"id": 2, "name": "Workshops", "color": "#59B077", "font-color": "#FFFFFF", "description": "Hands-on"},
]
SESSION_TYPES = [
    {"id": 1, "name": "Talk", "length": "00:30"},
    {"id": 2, "name": "Workshop", "length": "02:00"},
]
SPEAKERS = [
    {
        "id": 1,
        "name": "Ada Example",
        "email": "ada@example.org",
        "photo-url": "/images/speakers/AdaExample_1.png",
        "organisation": "Example Labs",
        "country": "Germany",
        "short-biography": "Builds open hardware.",
        "is-featured": True,
        "sessions": [{"id": 1, "title": "Opening"}],
    },
    {
        "id": 2,
        "name": "Bo Sample",
        "email": "bo@example.org",
        "photo-url": None,
        "organisation": "Sample Co",
        "country": "Singapore",
        "is-featured": False,
        "sessions": [],
    },
]
SESSIONS = [
    {
        "id": 1,
        "title": "Opening",
        "short-abstract": "Welcome",
        "starts-at": "2026-06-06T09:00:00+02:00",
        "ends-at": "2026-06-06T09:30:00+02:00",
        "track": {"id": 1, "name": "Talks"},
        "microlocation": {"id": 1, "name": "Main Hall"},
        "session-type": {"id": 1, "name": "Talk", "length": "00:30"},
        "speakers": [{"id": 1, "name": "Ada Example"}],
        "state": "accepted",
    },
    {
        "id": 2,
        "title": "Soldering for Beginners",
        "short-abstract": "Bring nothing, leave with a blinking badge.",
        "starts-at": "2026-06-06T10:00:00+02:00",
        "ends-at": "2026-06-06T12:00:00+02:00",
        "track": {"id": 2, "name": "Workshops"},
        "microlocation": {"id": 2, "name": "Workshop Room"},
        "session-type": {"id": 2, "name": "Workshop", "length": "02:00"},
        "speakers": [{"id": 1}, {"id": 2}],
        "state": "accepted",
    },
    {
        "id": 3,
        "title": "Closing",
        "starts-at": "2026-06-06T17:30:00+02:00",
        "ends-at": "2026-06-06T18:00:00+02:00",
        "track": {"id": 1},
        "microlocation": {"id": 1},
        "session-type": {"id": 1},
        "speakers": [],
        "state": "accepted",
    },
]
SPONSORS = [
    {
        "id": 1,
        "name": "Example Foundation",
        "logo-url": "/images/sponsors/ExampleFoundation_1.png",
        "level": "1",
        "type": "Gold",
        "url": "https://example.org/",
    }
]
FORMS = [{"id": 1, "session_form": "{}", "speaker_form": "{}"}]

FILES = {
    "event": EVENT,
    "meta": {"root_url": "https://example.org/"},
    "forms": FORMS,
    "microlocations": MICROLOCATIONS,
    "tracks": TRACKS,
    "session_types": SESSION_TYPES,
    "speakers": SPEAKERS,
    "sessions": SESSIONS,
    "sponsors": SPONSORS,
}
MEDIA = {
    "images/logo.png": PIXEL,
    "images/speakers/AdaExample_1.png": PIXEL,
    "images/sponsors/ExampleFoundation_1.png": PIXEL,
}


def write(path: Path = OUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**{k: json.dumps(v, indent=2).encode() for k, v in FILES.items()}, **MEDIA}.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


if __name__ == "__main__":
    print(write())
