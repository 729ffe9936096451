"""Generate synthetic Open Event export archives of any size, for benchmarks.

Deterministic: the same arguments (and seed) give the same bytes. The archive
has N sessions, N/2 speakers, two speakers per session (linked from both
sides, as real exports do), tens of tracks, microlocations and session types,
a hundred sponsors, custom forms, ``meta``, and an event with social links.
It is written in the kebab-case dialect of the real exports: data files
without ``.json``, ``starts-at``, ``photo-url``, ``session-type`` as an
inline object ``{"id", "name", "length"}``, ``track``/``microlocation`` as
``{"id", "name"}``, ``speakers`` as a list of ``{"id", "name"}``, plus a few
fields that are not columns (they land in ``extra``). Media folders hold the
event logo and the sponsor logos only (a photo per speaker would exceed the
importer's member limit at 100k sessions; media are not read into the
database anyway).

``edited`` copies have the same ids and a fixed, seeded fraction of the
sessions changed (title and last-modified time), for re-import benchmarks.

As a module::

    from scripts.generate_archive import generate
    generate(10_000, "bench-10k.zip", edited_path="bench-10k-edited.zip")

From the command line::

    python scripts/generate_archive.py 10000 bench-10k.zip [--seed 1] [--edited bench-10k-edited.zip]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ZIP_DATE = (2026, 1, 1, 0, 0, 0)
EVENT_START = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)
DAYS = 4

N_TRACKS = 24
N_MICROLOCATIONS = 30
N_SESSION_TYPES = 12
N_SPONSORS = 100
EDIT_FRACTION = 0.01

WORDS = [
    "open",
    "source",
    "hardware",
    "software",
    "community",
    "data",
    "cloud",
    "kernel",
    "python",
    "rust",
    "web",
    "mobile",
    "design",
    "security",
    "privacy",
    "network",
    "compiler",
    "database",
    "stream",
    "graph",
    "machine",
    "learning",
    "model",
    "robot",
    "sensor",
    "map",
    "energy",
    "science",
    "education",
    "health",
    "city",
    "music",
    "art",
    "game",
    "library",
    "tool",
    "build",
    "test",
    "deploy",
    "scale",
    "edge",
    "device",
    "browser",
    "server",
    "protocol",
    "standard",
    "language",
    "runtime",
    "memory",
    "storage",
    "cache",
    "queue",
    "event",
    "schedule",
    "speaker",
    "session",
    "track",
    "room",
    "workshop",
    "keynote",
    "panel",
    "lightning",
    "talk",
    "summit",
    "asia",
    "future",
    "people",
]
FIRST = [
    "Ada",
    "Bo",
    "Chen",
    "Dara",
    "Eko",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jun",
    "Kim",
    "Lea",
    "Minh",
    "Nora",
    "Omar",
    "Priya",
    "Quan",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vi",
]
LAST = [
    "Lim",
    "Tan",
    "Nguyen",
    "Schmidt",
    "Garcia",
    "Okafor",
    "Sato",
    "Kumar",
    "Rossi",
    "Silva",
    "Novak",
    "Cohen",
    "Park",
    "Ali",
    "Wong",
    "Meyer",
    "Khan",
    "Ito",
]
COUNTRIES = ["Singapore", "Germany", "India", "Vietnam", "Indonesia", "Japan", "USA", "Brazil", "Kenya", "France"]
LEVELS = ["Beginner", "Intermediate", "Advanced"]
LANGUAGES = ["English", "Chinese", "Vietnamese", "German"]
STATES = ["accepted", "confirmed", "accepted", "accepted"]
SPONSOR_TYPES = ["Platinum", "Gold", "Silver", "Bronze", "Community", "Media"]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _length_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def build_documents(n_sessions: int, seed: int = 1) -> dict[str, Any]:
    """The parsed JSON of every data file, keyed by archive file name."""
    rng = random.Random(seed)
    n_speakers = max(2, n_sessions // 2)

    event = {
        "id": 1,
        "name": f"Synthetic Open Tech Summit ({n_sessions} sessions)",
        "starts-at": _iso(EVENT_START),
        "ends-at": _iso(EVENT_START + timedelta(days=DAYS - 1, hours=9)),
        "timezone": "Asia/Singapore",
        "location-name": "Lifelong Learning Institute, 11 Eunos Road 8, Singapore",
        "latitude": 1.3197,
        "longitude": 103.8932,
        "description": _text(rng, 80),
        "logo-url": "/images/logo.png",
        "organizer-name": "Synthetic Org",
        "organizer-description": _text(rng, 30),
        "privacy": "public",
        "type": "Conference",
        "topic": "Science & Technology",
        "sub-topic": "High Tech",
        "state": "Published",
        "email": "info@example.org",
        "code-of-conduct": _text(rng, 40),
        "social-links": [
            {"id": i + 1, "name": name, "link": f"https://{host}/synthetic-summit"}
            for i, (name, host) in enumerate(
                [
                    ("Website", "example.org"),
                    ("Twitter", "twitter.example.com"),
                    ("Facebook", "facebook.example.com"),
                    ("GitHub", "github.example.com"),
                    ("YouTube", "youtube.example.com"),
                    ("Mastodon", "social.example.org"),
                ]
            )
        ],
        "version": {"event_ver": 3, "sessions_ver": 7, "speakers_ver": 5, "tracks_ver": 2},
    }

    tracks = [
        {
            "id": i,
            "name": f"Track {i}: {' '.join(rng.choices(WORDS, k=2)).title()}",
            "description": _text(rng, 12),
            "color": f"#{rng.randrange(1 << 24):06X}",
            "font-color": "#FFFFFF",
            "track-image-url": None,
            "sessions": [],
        }
        for i in range(1, N_TRACKS + 1)
    ]
    microlocations = [
        {
            "id": i,
            "name": f"Room {i:02d}",
            "floor": i % 4,
            "latitude": None,
            "longitude": None,
            "room": f"{i % 4}.{i:02d}",
        }
        for i in range(1, N_MICROLOCATIONS + 1)
    ]
    type_lengths = [15, 20, 30, 40, 45, 60, 90, 120, 180, 240, 5, 10]
    session_types = [
        {"id": i, "name": f"Format {i} ({type_lengths[i - 1]} min)", "length": _length_text(type_lengths[i - 1])}
        for i in range(1, N_SESSION_TYPES + 1)
    ]
    sponsors = [
        {
            "id": i,
            "name": f"Sponsor {i} {rng.choice(LAST)} Labs",
            "description": _text(rng, 15),
            "url": f"https://sponsor{i}.example.com/",
            "level": str(1 + i % 5),
            "type": SPONSOR_TYPES[i % len(SPONSOR_TYPES)],
            "logo-url": f"/images/sponsors/Sponsor{i}.png",
        }
        for i in range(1, N_SPONSORS + 1)
    ]

    speakers = []
    for i in range(1, n_speakers + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        speakers.append(
            {
                "id": i,
                "name": f"{first} {last} {i}",
                "email": f"speaker{i}@example.org",
                "mobile": f"+65 {rng.randrange(10**7, 10**8)}",
                "photo-url": f"/images/speakers/{first}{last}_{i}.jpg",
                "organisation": f"{rng.choice(LAST)} {rng.choice(['Labs', 'Inc', 'University', 'Foundation'])}",
                "position": rng.choice(["Engineer", "Developer", "Researcher", "Student", "Maintainer"]),
                "country": rng.choice(COUNTRIES),
                "city": None,
                "gender": rng.choice(["female", "male", "other", None]),
                "short-biography": _text(rng, 25),
                "long-biography": _text(rng, 60),
                "speaking-experience": rng.choice(["", "meetups", "conferences"]),
                "website": f"https://speaker{i}.example.net/",
                "twitter": f"https://twitter.example.com/speaker{i}",
                "github": f"https://github.example.com/speaker{i}",
                "linkedin": None,
                "is-featured": i % 50 == 0,
                "sessions": [],
            }
        )

    sessions = []
    slot = timedelta(minutes=30)
    slots_per_day = 18
    for i in range(1, n_sessions + 1):
        track = tracks[rng.randrange(N_TRACKS)]
        room = microlocations[rng.randrange(N_MICROLOCATIONS)]
        stype = session_types[rng.randrange(N_SESSION_TYPES)]
        first_speaker, second_speaker = rng.sample(range(n_speakers), 2)
        day, period = divmod(rng.randrange(DAYS * slots_per_day), slots_per_day)
        starts = EVENT_START + timedelta(days=day) + period * slot
        title = f"{_text(rng, rng.randrange(3, 9))[:-1]} #{i}"
        session = {
            "id": i,
            "title": title,
            "subtitle": _text(rng, 6) if i % 3 == 0 else None,
            "short-abstract": _text(rng, 25),
            "long-abstract": _text(rng, 90),
            "comments": None,
            "starts-at": _iso(starts),
            "ends-at": _iso(starts + timedelta(minutes=type_lengths[stype["id"] - 1])),
            "language": rng.choice(LANGUAGES),
            "level": rng.choice(LEVELS),
            "state": rng.choice(STATES),
            "signup-url": None,
            "slides-url": f"https://slides.example.org/{i}.pdf" if i % 4 == 0 else None,
            "audio-url": None,
            "video-url": f"https://video.example.org/watch?v={i}" if i % 5 == 0 else None,
            "track": {"id": track["id"], "name": track["name"]},
            "microlocation": {"id": room["id"], "name": room["name"]},
            "session-type": {"id": stype["id"], "name": stype["name"], "length": stype["length"]},
            "speakers": [
                {"id": speakers[s]["id"], "name": speakers[s]["name"]} for s in (first_speaker, second_speaker)
            ],
            # Not columns: kept by the importer in ``extra``.
            "submitted-at": _iso(EVENT_START - timedelta(days=60, minutes=i)),
            "last-modified-at": _iso(EVENT_START - timedelta(days=30)),
            "is-mail-sent": bool(i % 2),
            "average-rating": round(rng.uniform(1, 5), 2),
        }
        sessions.append(session)
        for s in (first_speaker, second_speaker):
            speakers[s]["sessions"].append({"id": i, "title": title})
        track["sessions"].append({"id": i, "title": title})

    forms = [
        {
            "id": 1,
            "session_form": {"title": {"include": 1, "require": 1}, "track": {"include": 1, "require": 0}},
            "speaker_form": {"name": {"include": 1, "require": 1}, "email": {"include": 1, "require": 1}},
        }
    ]
    return {
        "event": event,
        "meta": {"root_url": "https://example.org/", "generator": "scripts/generate_archive.py", "seed": seed},
        "forms": forms,
        "microlocations": microlocations,
        "tracks": tracks,
        "session_types": session_types,
        "speakers": speakers,
        "sessions": sessions,
        "sponsors": sponsors,
    }


def edit_documents(documents: dict[str, Any], fraction: float = EDIT_FRACTION, seed: int = 2) -> dict[str, Any]:
    """A copy with ``fraction`` of the sessions edited (title, last-modified time); same ids.

    Copies only what changes; the input is left as it was.
    """
    edited = dict(documents)
    sessions = list(documents["sessions"])
    count = max(1, round(len(sessions) * fraction)) if sessions else 0
    titles = {}
    for index in random.Random(seed).sample(range(len(sessions)), count):
        session = dict(sessions[index])
        session["title"] = f"{session['title']} (updated)"
        session["last-modified-at"] = _iso(EVENT_START - timedelta(days=1))
        sessions[index] = session
        titles[session["id"]] = session["title"]
    edited["sessions"] = sessions
    for name in ("speakers", "tracks"):
        owners = []
        for owner in documents[name]:
            if any(ref["id"] in titles for ref in owner["sessions"]):
                owner = dict(owner)
                owner["sessions"] = [
                    {**ref, "title": titles[ref["id"]]} if ref["id"] in titles else ref for ref in owner["sessions"]
                ]
            owners.append(owner)
        edited[name] = owners
    return edited


def media_files(documents: dict[str, Any]) -> dict[str, bytes]:
    files = {"images/logo.png": PIXEL}
    for sponsor in documents["sponsors"]:
        files[sponsor["logo-url"].lstrip("/")] = PIXEL
    return files


def write_archive(documents: dict[str, Any], path: str | Path) -> Path:
    """Write the documents (files without ``.json``) and media as a deterministic zip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {name: json.dumps(doc, ensure_ascii=False).encode() for name, doc in documents.items()}
    members.update(media_files(documents))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(path)
    return path


def generate(
    n_sessions: int,
    path: str | Path,
    *,
    seed: int = 1,
    edited_path: str | Path | None = None,
    edit_fraction: float = EDIT_FRACTION,
) -> dict[str, Any]:
    """Write the archive (and optionally its edited copy); return a summary of what was written."""
    documents = build_documents(n_sessions, seed)
    summary: dict[str, Any] = {
        "path": str(write_archive(documents, path)),
        "sessions": len(documents["sessions"]),
        "speakers": len(documents["speakers"]),
        "links": sum(len(s["speakers"]) for s in documents["sessions"]),
        "tracks": len(documents["tracks"]),
        "microlocations": len(documents["microlocations"]),
        "session_types": len(documents["session_types"]),
        "sponsors": len(documents["sponsors"]),
        "social_links": len(documents["event"]["social-links"]),
    }
    if edited_path is not None:
        edited = edit_documents(documents, edit_fraction, seed=seed + 1)
        summary["edited_path"] = str(write_archive(edited, edited_path))
        summary["edited_sessions"] = max(1, round(len(documents["sessions"]) * edit_fraction))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sessions", type=int, help="number of sessions (speakers: half as many)")
    parser.add_argument("out", help="archive to write (.zip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edited", help="also write a copy with a fraction of the sessions edited, same ids")
    parser.add_argument("--edit-fraction", type=float, default=EDIT_FRACTION)
    args = parser.parse_args(argv)
    summary = generate(
        args.sessions, args.out, seed=args.seed, edited_path=args.edited, edit_fraction=args.edit_fraction
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
