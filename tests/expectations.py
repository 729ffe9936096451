"""Expected contents of an archive, computed straight from its JSON.

Deliberately independent of ``event_pipeline``: plain ``json`` and a few
lines per rule of the format, so the importer is checked against a second
reading of the archive, not against itself.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    return str(int(value)) if isinstance(value, (int, float)) or str(value).strip().isdigit() else str(value)


DATA_FILES = {"event", "forms", "microlocations", "sponsors", "speakers", "tracks", "session_types", "sessions"}


def read_documents(path: Path) -> dict[str, Any]:
    docs = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            base = name.rsplit("/", 1)[-1] if name.count("/") == 1 and not name.endswith("/") else name
            if "/" in base:
                continue
            stem = base[:-5] if base.endswith(".json") else base
            if stem in DATA_FILES:
                docs[stem] = json.loads(zf.read(name).decode("utf-8"))
    return docs


def get(record: dict, *names: str) -> Any:
    for name in names:
        if name in record:
            return record[name]
    return None


def expected(path: Path) -> dict[str, Any]:
    docs = read_documents(path)
    event = docs["event"]
    sessions = docs.get("sessions", [])
    speakers = docs.get("speakers", [])
    session_type_ids = {_id(t) for t in docs.get("session_types", [])}
    for session in sessions:
        inline = get(session, "session-type", "session_type")
        if isinstance(inline, dict) and _id(inline) is not None:
            session_type_ids.add(_id(inline))
    session_ids = {_id(s) for s in sessions}
    speaker_ids = {_id(s) for s in speakers}
    links = set()
    for session in sessions:
        for speaker in get(session, "speakers") or []:
            links.add((_id(session), _id(speaker)))
    for speaker in speakers:
        for session in get(speaker, "sessions") or []:
            links.add((_id(session), _id(speaker)))
    links = {(a, b) for a, b in links if a in session_ids and b in speaker_ids}
    refs = {
        _id(s): {
            "track": _id(get(s, "track")),
            "microlocation": _id(get(s, "microlocation")),
            "session_type": _id(get(s, "session-type", "session_type")),
        }
        for s in sessions
    }
    return {
        "event_name": event["name"],
        "counts": {
            "events": 1,
            "social_links": len(get(event, "social-links", "social_links") or []),
            "custom_forms": len(docs.get("forms", [])),
            "microlocations": len(docs.get("microlocations", [])),
            "sponsors": len(docs.get("sponsors", [])),
            "speakers": len(speakers),
            "tracks": len(docs.get("tracks", [])),
            "session_types": len(session_type_ids),
            "sessions": len(sessions),
            "session_speakers": len(links),
        },
        "links": links,
        "refs": refs,
        "photos": {_id(s): get(s, "photo-url", "photo_url", "photo") for s in speakers},
        "titles": {_id(s): s.get("title") for s in sessions},
    }


# The archive key rule's exact messages (README, "Archive keys"), written out here, not read from the code.
RULE = (
    "a key is 1 to 128 characters, each an ASCII letter, a digit, '.', '_' or '-', "
    "not starting with '.' or '-', without '..'"
)
LONG = "k" * 5000
INVALID = [
    ("x/y", "invalid archive key 'x/y': it contains '/'"),
    (".", "invalid archive key '.': it starts with '.'"),
    ("..", "invalid archive key '..': it starts with '.'"),
    (LONG, "invalid archive key '" + "k" * 40 + "...': it is 5000 characters long"),
    ("", "invalid archive key '': it is empty"),
    ("a...b", "invalid archive key 'a...b': it contains '..'"),
    ("x..y", "invalid archive key 'x..y': it contains '..'"),
    ("-rf", "invalid archive key '-rf': it starts with '-'"),
    ("a b", "invalid archive key 'a b': it contains ' '"),
    ("a\\b", "invalid archive key 'a\\\\b': it contains '\\\\'"),
    ("café", "invalid archive key 'caf\\xe9': it contains '\\xe9'"),
    ("nul\x00", "invalid archive key 'nul\\x00': it contains '\\x00'"),
    ("\ud800", "invalid archive key '\\ud800': it contains '\\ud800'"),
    ("line\nbreak", "invalid archive key 'line\\nbreak': it contains '\\n'"),
]
