"""The real sample exports import exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from conftest import BROKEN_SAMPLE, GOOD_SAMPLES, import_archive, rows, sample, scalar
from expectations import expected

# Counted by hand from each archive's JSON (jq-style: length of each list;
# session types = ids in session_types plus ids only given inline in sessions;
# links = union of sessions[].speakers and speakers[].sessions, both ends existing).
COLUMNS = ("social_links", "custom_forms", "microlocations", "sponsors")
COLUMNS += ("speakers", "tracks", "session_types", "sessions")
HAND_COUNTS = {
    name: dict(zip(COLUMNS, figures, strict=True))
    for name, figures in {
        "FOSSASIASummit2014": (8, 1, 1, 13, 5, 1, 2, 5),
        "FOSSASIASummit2015": (8, 1, 2, 9, 22, 1, 18, 18),
        "FOSSASIASummit2016": (8, 1, 17, 11, 187, 18, 32, 491),
        "OTS16": (7, 0, 8, 7, 77, 7, 29, 82),
    }.items()
}


@pytest.mark.parametrize("name", GOOD_SAMPLES)
def test_sample_imports_exactly(name, db_url):
    path = sample(name)
    want = expected(path)
    code, result = import_archive(path, db_url)
    assert code == 0, result
    assert result["state"] == "SUCCESS"
    event_id = result["result"]["id"]
    assert result["result"]["event_name"] == want["event_name"]
    assert result["counts"] == want["counts"]
    for table, count in HAND_COUNTS[name].items():
        assert want["counts"][table] == count, f"the JSON reading disagrees with the hand count for {table}"

    # Rows really in the database, per table.
    for table, count in want["counts"].items():
        if table == "events":
            continue
        if table == "session_speakers":
            query = (
                "select count(*) from session_speakers l join sessions s on s.id = l.session_id where s.event_id = :e"
            )
        else:
            query = f"select count(*) from {table} where event_id = :e"
        assert scalar(db_url, query, e=event_id) == count, table

    # Every link, by source ids.
    links = rows(
        db_url,
        "select s.source_id, p.source_id from session_speakers l join sessions s on s.id = l.session_id "
        "join speakers p on p.id = l.speaker_id where s.event_id = :e",
        e=event_id,
    )
    assert {(a, b) for a, b in links} == want["links"]

    # Every session's references point at the right rows of the same event.
    got = rows(
        db_url,
        "select s.source_id, t.source_id, m.source_id, st.source_id, s.title, t.event_id, m.event_id, st.event_id "
        "from sessions s left join tracks t on t.id = s.track_id "
        "left join microlocations m on m.id = s.microlocation_id "
        "left join session_types st on st.id = s.session_type_id where s.event_id = :e",
        e=event_id,
    )
    track_ids = {r[0] for r in rows(db_url, "select source_id from tracks where event_id = :e", e=event_id)}
    room_ids = {r[0] for r in rows(db_url, "select source_id from microlocations where event_id = :e", e=event_id)}
    for sid, track, room, stype, title, *owners in got:
        refs = want["refs"][sid]
        assert track == (refs["track"] if refs["track"] in track_ids else None)
        assert room == (refs["microlocation"] if refs["microlocation"] in room_ids else None)
        assert stype == refs["session_type"]
        assert title == want["titles"][sid]
        assert all(o in (None, event_id) for o in owners)

    # Photos: the archive's path, kept in extra where the column now holds the stored copy's URL (test_media.py).
    photos = {}
    for source_id, photo_url, extra in rows(
        db_url, "select source_id, photo_url, extra from speakers where event_id = :e", e=event_id
    ):
        extra = extra if isinstance(extra, dict) else json.loads(extra)
        photos[source_id] = extra.get("archive_paths", {}).get("photo_url", photo_url)
    assert photos == want["photos"]
    assert scalar(db_url, "select state from import_jobs where event_id = :e", e=event_id) == "SUCCESS"


def test_broken_sample_fails_cleanly_naming_file_and_position(db_url):
    code, result = import_archive(sample(BROKEN_SAMPLE), db_url)
    assert code == 1
    assert result["state"] == "FAILURE"
    assert "session_types" in result["error"]
    assert "line 12 column 5" in result["error"]
    assert result["errors"][0]["file"] == "session_types"
    assert scalar(db_url, "select count(*) from events") == 0
    assert scalar(db_url, "select count(*) from sessions") == 0
    job = rows(db_url, "select state, error, errors from import_jobs")
    assert len(job) == 1 and job[0][0] == "FAILURE" and "line 12 column 5" in job[0][1]


def test_all_samples_side_by_side_keep_separate_events(db_url):
    ids = set()
    for name in GOOD_SAMPLES:
        code, result = import_archive(sample(name), db_url)
        assert code == 0, result
        ids.add(result["result"]["id"])
    assert len(ids) == len(GOOD_SAMPLES)
    assert scalar(db_url, "select count(*) from events") == len(GOOD_SAMPLES)
    total = sum(HAND_COUNTS[n]["sessions"] for n in GOOD_SAMPLES)
    assert scalar(db_url, "select count(*) from sessions") == total
