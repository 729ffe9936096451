"""What the bulk writer stores is what the archive said, byte for byte: COPY (PostgreSQL) and
executemany (SQLite) alike, for text that COPY's format must escape and for JSON columns."""

from __future__ import annotations

import json

from archives import kebab_event, write_zip
from conftest import import_archive, rows

AWKWARD = "tab\there\nnew line\r\\N back\\slash \"quoted\" 'single' \\. end ünï 😀 \x7f"


def test_awkward_text_and_json_round_trip(db_url, tmp_path):
    files = kebab_event()
    session = files["sessions"][0]
    session["title"] = AWKWARD
    session["long-abstract"] = "\\" * 7 + "\n\n" + "x" * 5000
    session["custom-field"] = {"nested": [AWKWARD, {"n": 1.5, "t": True, "z": None}]}
    files["event"]["copyright"] = {"holder": AWKWARD, "licence": "CC-BY"}
    code, result = import_archive(write_zip(tmp_path / "awkward.zip", files), db_url)
    assert code == 0, result

    ((title, abstract, extra),) = rows(db_url, "SELECT title, long_abstract, extra FROM sessions WHERE source_id = '1'")
    assert title == AWKWARD
    assert abstract == "\\" * 7 + "\n\n" + "x" * 5000
    extra = extra if isinstance(extra, dict) else json.loads(extra)
    assert extra["custom-field"] == {"nested": [AWKWARD, {"n": 1.5, "t": True, "z": None}]}
    (copyright,) = rows(db_url, "SELECT copyright FROM events")[0]
    copyright = copyright if isinstance(copyright, dict) else json.loads(copyright)
    assert copyright == {"holder": AWKWARD, "licence": "CC-BY"}
    # NULLs stay NULL (not the string "None" or an empty string); every link arrived.
    assert rows(db_url, "SELECT subtitle FROM sessions WHERE source_id = '1'")[0][0] is None
    links = {
        tuple(r)
        for r in rows(
            db_url,
            "SELECT s.source_id, p.source_id FROM session_speakers l "
            "JOIN sessions s ON s.id = l.session_id JOIN speakers p ON p.id = l.speaker_id",
        )
    }
    assert ("1", "2") in links and ("2", "3") in links
