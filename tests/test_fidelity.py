"""Fidelity round 2: every generation of the format imports exactly; nothing is dropped or shifted silently.

Each test builds an archive equivalent to a case of ``shared/cases/fidelity``
(the values read from its JSON by hand) and asserts the rows on SQLite and
PostgreSQL. The lossless check runs on every sample and case archive.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from archives import write_zip
from conftest import REPO, SAMPLES, import_archive, rows, run_cli, scalar
from lossless import lost_fields

CASES = Path(REPO.parent / "shared" / "cases" / "fidelity")


def _utc(value) -> datetime:
    """A timestamp column as an aware UTC instant (SQLite gives it back as naive text, in UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _warnings(payload) -> list[tuple]:
    return [(w["file"], w["record_id"], w["field"], w["message"]) for w in payload["warnings"]]


SERVER_EXPORT = {
    # The reference server's current exporter: each model's columns (export_helpers.export_event_json).
    "event": {
        "id": 12,
        "name": "Sample Summit 2019",
        "starts_at": "2019-03-14T01:00:00+00:00",
        "ends_at": "2019-03-17T10:00:00+00:00",
        "timezone": "Asia/Singapore",
        "owner_name": "Sample Org",
        "owner_description": "Organiser of the summit",
        "event_type_id": 3,
        "event_topic_id": 5,
        "event_sub_topic_id": 20,
        "identifier": "a1b2c3d4",
        "deleted_at": None,
    },
    "meta": {"root_url": "https://server.example.org/"},
    "forms": [
        {
            "id": 1,
            "field_identifier": "title",
            "form": "session",
            "type": "text",
            "name": "Title",
            "is_required": True,
            "is_included": True,
            "is_fixed": True,
            "event_id": 12,
            "position": 0,
            "deleted_at": None,
        }
    ],
    "microlocations": [{"id": 40, "name": "Hall A", "floor": 1, "event_id": 12, "position": 0}],
    "session_types": [{"id": 90, "name": "Talk", "length": "00:30", "event_id": 12, "position": 0}],
    "tracks": [{"id": 70, "name": "Web", "color": "#74cae6", "event_id": 12, "position": 0}],
    "sponsors": [{"id": 20, "name": "ACME", "level": 1, "type": "Gold", "event_id": 12}],
    "speakers": [{"id": 300, "name": "Alex Example", "event_id": 12, "user_id": 7, "order": 0}],
    "sessions": [
        {
            "id": 500,
            "title": "Scaling the server",
            "starts_at": "2019-03-15T02:00:00+00:00",
            "ends_at": "2019-03-15T02:30:00+00:00",
            "session_type_id": 90,
            "track_id": 70,
            "microlocation_id": 40,
            "event_id": 12,
            "creator_id": 7,
            "slides_url": None,
            "slides": None,
            "average_rating": 0.0,
        }
    ],
}


def test_reference_server_current_export_keeps_every_link(db_url, tmp_path):
    code, payload = import_archive(write_zip(tmp_path / "server.zip", SERVER_EXPORT), db_url)
    assert code == 0, payload
    counts = payload["counts"]
    assert (counts["sessions"], counts["tracks"], counts["microlocations"], counts["session_types"]) == (1, 1, 1, 1)
    assert (counts["custom_forms"], counts["speakers"], counts["sponsors"]) == (1, 1, 1)
    (session,) = rows(
        db_url,
        "SELECT t.source_id AS track, m.source_id AS room, y.source_id AS type FROM sessions s "
        "JOIN tracks t ON t.id = s.track_id JOIN microlocations m ON m.id = s.microlocation_id "
        "JOIN session_types y ON y.id = s.session_type_id WHERE s.source_id = '500'",
    )
    assert tuple(session) == ("70", "40", "90")
    (event,) = rows(db_url, "SELECT organizer_name, organizer_description, extra FROM events")
    assert event[:2] == ("Sample Org", "Organiser of the summit")
    extra = event[2] if isinstance(event[2], dict) else json.loads(event[2])
    assert extra == {"event_type_id": 3, "event_topic_id": 5, "event_sub_topic_id": 20, "identifier": "a1b2c3d4"}
    (form,) = rows(db_url, "SELECT form, field_identifier, name, type, is_required, position FROM custom_forms")
    assert tuple(form) == ("session", "title", "Title", "text", True, 0)
    # Links to what an archive does not carry are named once per field and file, with a count.
    reference_like = sorted((f, fld, m) for f, r, fld, m in _warnings(payload) if "looks like a reference" in m)
    assert reference_like == [
        (
            "event",
            "event_sub_topic_id",
            "looks like a reference but is not imported as a link; kept in extra (1 record)",
        ),
        ("event", "event_topic_id", "looks like a reference but is not imported as a link; kept in extra (1 record)"),
        ("event", "event_type_id", "looks like a reference but is not imported as a link; kept in extra (1 record)"),
        ("sessions", "creator_id", "looks like a reference but is not imported as a link; kept in extra (1 record)"),
        ("speakers", "user_id", "looks like a reference but is not imported as a link; kept in extra (1 record)"),
    ]
    # The unmapped notice: per file, field -> records; the server's JSON ``slides`` loses to ``slides_url``.
    assert payload["unmapped"] == {
        "event": {"event_type_id": 1, "event_topic_id": 1, "event_sub_topic_id": 1, "identifier": 1},
        "sessions": {"creator_id": 1, "slides": 1, "average_rating": 1},
        "speakers": {"user_id": 1, "order": 1},
    }
    stored = scalar(db_url, "SELECT unmapped FROM import_jobs WHERE state = 'SUCCESS'")
    assert (json.loads(stored) if isinstance(stored, str) else stored) == payload["unmapped"]


NAIVE = {
    "event": {
        "id": 6,
        "name": "FOSSASIA Summit 2017",
        "timezone": "Asia/Singapore",
        "start_time": "2017-03-17T09:00:00",
        "end_time": "2017-03-19T18:00:00",
    },
    "sessions": [
        {"id": 2878, "title": "Sample workshop", "start_time": "2017-03-19T12:00:00", "end_time": "2017-03-19T12:55:00"}
    ],
}


def _with_offset(files, offset):
    files = {k: (dict(v) if isinstance(v, dict) else [dict(r) for r in v]) for k, v in files.items()}
    for record in [files["event"], *files["sessions"]]:
        for key in ("start_time", "end_time"):
            record[key] += offset
    return files


def _times(url):
    event = rows(url, "SELECT starts_at, ends_at FROM events")[0]
    session = rows(url, "SELECT starts_at, ends_at FROM sessions")[0]
    return [_utc(v) for v in (*event, *session)]


def _session_timezone(url: str, zone: str) -> str:
    """The same PostgreSQL database, with the connection's ``timezone`` setting changed."""
    return url.replace("options=", f"options=-ctimezone%3D{zone.replace('/', '%2F')}%20") if "options=" in url else url


@pytest.mark.parametrize("offset", ["", "+08:00"])
def test_times_without_an_offset_are_wall_times_of_the_event_zone(db_url, tmp_path, offset):
    url = _session_timezone(db_url, "America/New_York")  # whatever the server session's zone
    code, payload = import_archive(write_zip(tmp_path / "tz.zip", _with_offset(NAIVE, offset)), url)
    assert code == 0, payload
    assert _times(db_url) == [
        datetime(2017, 3, 17, 1, 0, tzinfo=UTC),
        datetime(2017, 3, 19, 10, 0, tzinfo=UTC),
        datetime(2017, 3, 19, 4, 0, tzinfo=UTC),
        datetime(2017, 3, 19, 4, 55, tzinfo=UTC),
    ]
    assert not [w for w in payload["warnings"] if w["field"] == "timezone"]


@pytest.mark.parametrize(
    ("zone", "hours", "warning"),
    [
        ("Hawaii-Aleutian", -10, None),  # informal name in real data (open-event-wsgen, Mozilla All Hands 2016)
        ("Singapore Standard Time", 8, None),  # a Windows zone name
        ("UTC+05:30", 5.5, None),
        ("Mars/Olympus_Mons", 0, "time zone 'Mars/Olympus_Mons' is unknown; times without an offset are taken as UTC"),
        (None, 0, "4 times without an offset and no event time zone; taken as UTC"),
    ],
)
def test_time_zone_names(db_url, tmp_path, zone, hours, warning):
    files = _with_offset(NAIVE, "")
    files["event"]["timezone"] = zone
    code, payload = import_archive(write_zip(tmp_path / "tz.zip", files), db_url)
    assert code == 0, payload
    minutes = int(hours * 60)
    wall = datetime(2017, 3, 19, 12, 0, tzinfo=UTC)
    assert _times(db_url)[2] == wall - timedelta(minutes=minutes)
    zone_warnings = [w["message"] for w in payload["warnings"] if w["field"] == "timezone"]
    assert zone_warnings == ([warning] if warning else [])


V0 = {
    # The 2015-2016 API dump (open-event-droidgen assets @02032a7c): wrappers, begin/end, old field names.
    "events.json": {
        "events": [
            {
                "id": 4,
                "name": "Sample Summit",
                "start_time": "2015-05-28T13:00:00",
                "end_time": "2015-07-14T00:00:00",
                "url": "www.example.org",
                "slogan": "Sample",
                "logo": "https://example.org/logo.png",
            }
        ]
    },
    "microlocations.json": {"microlocations": [{"id": 0, "name": "Stage 7", "latitude": "75.12312", "floor": 2}]},
    "tracks.json": {"tracks": [{"id": 1, "name": "Business & Innovation", "description": "Track."}]},
    "speakers.json": {
        "speakers": [
            {"id": 1, "name": "Speaker One", "biography": "Bio.", "web": "https://example.org/s1", "sessions": [1]}
        ]
    },
    "sessions.json": {
        "sessions": [
            {
                "id": 1,
                "title": "First talk",
                "abstract": "Abstract.",
                "description": "Description.",
                "begin": "2015-05-05T15:45:00",
                "end": "2015-05-05T16:15:00",
                "track": 1,
                "microlocation": 0,
                "speakers": [{"id": 1, "name": "Speaker One"}],
                "format": None,
            }
        ]
    },
    "version.json": {"version": [{"event_id": 4, "event_ver": 1, "id": 27, "session_ver": 4}]},
}


@pytest.mark.parametrize("event_file", ["events.json", "event"])
def test_2015_api_dump_with_wrappers(db_url, tmp_path, event_file):
    files = dict(V0)
    files[event_file] = files.pop("events.json")
    code, payload = import_archive(write_zip(tmp_path / "v0.zip", files), db_url)
    assert code == 0, payload
    assert payload["result"]["event_name"] == "Sample Summit"
    (event,) = rows(db_url, "SELECT name, external_event_url, logo_url FROM events")
    assert event == ("Sample Summit", "www.example.org", "https://example.org/logo.png")
    (session,) = rows(
        db_url,
        "SELECT s.title, s.short_abstract, s.long_abstract, s.starts_at, s.ends_at, t.source_id, m.source_id "
        "FROM sessions s JOIN tracks t ON t.id = s.track_id JOIN microlocations m ON m.id = s.microlocation_id",
    )
    assert session[:3] == ("First talk", "Abstract.", "Description.")
    assert (_utc(session[3]), _utc(session[4])) == (
        datetime(2015, 5, 5, 15, 45, tzinfo=UTC),
        datetime(2015, 5, 5, 16, 15, tzinfo=UTC),
    )
    assert session[5:] == ("1", "0")
    (speaker,) = rows(db_url, "SELECT short_biography, website FROM speakers")
    assert speaker == ("Bio.", "https://example.org/s1")
    assert scalar(db_url, "SELECT count(*) FROM session_speakers") == 1
    assert (
        scalar(db_url, "SELECT latitude FROM microlocations"),
        scalar(db_url, "SELECT floor FROM microlocations"),
    ) == (
        75.12312,
        2,
    )
    assert payload["unmapped"] == {event_file.removesuffix(".json"): {"slogan": 1}}  # "format" is the type


JSONAPI = {
    # docs/general/import-export.md: "the same format as the GET APIs", which answer JSON:API documents.
    "event": {
        "data": {
            "type": "event",
            "id": "1",
            "attributes": {
                "name": "Sample JSON:API Event",
                "starts-at": "2017-06-01T09:00:00+00:00",
                "ends-at": "2017-06-02T18:00:00+00:00",
                "timezone": "UTC",
            },
            "links": {"self": "/v1/events/1"},
        },
        "jsonapi": {"version": "1.0"},
    },
    "tracks": {
        "data": [{"type": "track", "id": "3", "attributes": {"name": "Python", "color": "#ff0000"}}],
        "meta": {"count": 1},
    },
    "sessions": {
        "data": [
            {
                "type": "session",
                "id": "21",
                "attributes": {
                    "title": "Micropython Session",
                    "level": "Expert",
                    "starts-at": "2017-06-01T10:00:00.500127+00:00",
                    "ends-at": "2017-06-01T11:00:00.500127+00:00",
                },
                "relationships": {
                    "track": {"data": {"type": "track", "id": "3"}},
                    "microlocation": {"data": None},
                    "session-type": {"data": None},
                    "event": {"data": {"type": "event", "id": "1"}},
                },
            }
        ],
        "jsonapi": {"version": "1.0"},
    },
}


def test_jsonapi_documents(db_url, tmp_path):
    code, payload = import_archive(write_zip(tmp_path / "jsonapi.zip", JSONAPI), db_url)
    assert code == 0, payload
    assert payload["result"]["event_name"] == "Sample JSON:API Event"
    (session,) = rows(
        db_url,
        "SELECT s.source_id, s.title, s.level, s.starts_at, t.source_id, t.name, s.microlocation_id "
        "FROM sessions s JOIN tracks t ON t.id = s.track_id",
    )
    assert session[:3] == ("21", "Micropython Session", "Expert")
    assert _utc(session[3]) == datetime(2017, 6, 1, 10, 0, 0, 500127, tzinfo=UTC)
    assert session[4:] == ("3", "Python", None)
    assert payload["unmapped"] == {"event": {"links": 1}}
    assert payload["warnings"] == []


def test_jsonapi_compound_document_included_resources_become_records(db_url, tmp_path):
    files = {
        "event": {"data": {"type": "event", "id": "1", "attributes": {"name": "Compound"}}},
        "sessions": {
            "data": [
                {
                    "type": "session",
                    "id": "21",
                    "attributes": {"title": "T"},
                    "relationships": {
                        "speakers": {"data": [{"type": "speaker", "id": "7"}, {"type": "speaker", "id": "8"}]}
                    },
                }
            ],
            "included": [
                {"type": "speaker", "id": "7", "attributes": {"name": "Ann", "short-biography": "Bio."}},
                {"type": "speaker", "id": "8", "attributes": {"name": "Bo"}},
                {"type": "speaker", "id": "7", "attributes": {"name": "Ann", "short-biography": "Bio."}},
            ],
        },
    }
    code, payload = import_archive(write_zip(tmp_path / "compound.zip", files), db_url)
    assert code == 0, payload
    assert sorted(rows(db_url, "SELECT source_id, name, short_biography FROM speakers")) == [
        ("7", "Ann", "Bio."),
        ("8", "Bo", None),
    ]
    links = rows(
        db_url,
        "SELECT s.source_id, p.source_id FROM session_speakers l JOIN sessions s ON s.id = l.session_id "
        "JOIN speakers p ON p.id = l.speaker_id ORDER BY p.source_id",
    )
    assert [tuple(r) for r in links] == [("21", "7"), ("21", "8")]
    assert payload["warnings"] == []


def test_dangling_references_keep_their_raw_value(db_url, tmp_path):
    # open-event-server#31 (2015): the session type given by name; plus a dangling track object.
    files = {
        "event": {"id": 1, "name": "Sample 2015 Event", "timezone": "UTC"},
        "microlocations": {"microlocations": [{"id": 1, "name": "Room 1"}]},
        "speakers": {"speakers": [{"id": 1, "name": "Speaker One"}, {"id": 2, "name": "Speaker Two"}]},
        "sessions": {
            "sessions": [
                {"id": 1, "title": "Super Awesome", "microlocation": 1, "speakers": [1, 2], "type": "Awesome Type"},
                {"id": 2, "title": "B", "track": {"id": 99, "name": "Web"}, "speakers": [1, 3]},
            ]
        },
    }
    code, payload = import_archive(write_zip(tmp_path / "dangling.zip", files), db_url)
    assert code == 0, payload
    got = {r[0]: (r[1], r[2]) for r in rows(db_url, "SELECT source_id, session_type_id, extra FROM sessions")}
    extras = {k: (v[1] if isinstance(v[1], dict) else json.loads(v[1])) for k, v in got.items()}
    assert got["1"][0] is None and extras["1"] == {"type": "Awesome Type"}
    assert extras["2"] == {"track": {"id": 99, "name": "Web"}, "speakers": [1, 3]}
    assert sorted((f, r, fld) for f, r, fld, _ in _warnings(payload)) == [
        ("sessions", "1", "session_type"),
        ("sessions", "2", "speakers"),
        ("sessions", "2", "track"),
    ]
    assert scalar(db_url, "SELECT count(*) FROM session_speakers") == 3


def test_reference_by_name_resolves_to_the_one_record_so_named(db_url, tmp_path):
    files = {
        "event": {"id": 1, "name": "By name"},
        "session_types": [{"id": 5, "name": "Talk"}, {"id": 6, "name": "Lab"}, {"id": 7, "name": "Lab"}],
        "sessions": [{"id": 1, "title": "A", "type": "Talk"}, {"id": 2, "title": "B", "type": "Lab"}],
    }
    code, payload = import_archive(write_zip(tmp_path / "byname.zip", files), db_url)
    assert code == 0, payload
    got = dict(
        rows(
            db_url,
            "SELECT s.source_id, t.source_id FROM sessions s LEFT JOIN session_types t ON t.id = s.session_type_id",
        )
    )
    assert got == {"1": "5", "2": None}  # "Lab" names two types: ambiguous, so no link
    assert [(w["record_id"], w["field"]) for w in payload["warnings"]] == [("2", "session_type")]


def test_inline_reference_without_an_id_is_no_reference(db_url, tmp_path):
    files = {
        "event": {"id": 1, "name": "Inline Conf"},
        "sessions": [
            {"id": 1, "title": "A", "session_type": {"id": None, "name": "Talk", "length": "00:30"}},
            {"id": 2, "title": "B", "session_type": {"name": "Workshop", "length": "01:00"}},
        ],
    }
    code, payload = import_archive(write_zip(tmp_path / "inline.zip", files), db_url)
    assert code == 0, payload
    assert payload["counts"]["sessions"] == 2 and payload["counts"]["session_types"] == 0
    assert [(w["file"], w["record_id"], w["field"]) for w in payload["warnings"]] == [
        ("sessions", "1", "session_type"),
        ("sessions", "2", "session_type"),
    ]
    got = {
        r[0]: (r[1], r[2] if isinstance(r[2], dict) else json.loads(r[2]))
        for r in rows(db_url, "SELECT source_id, session_type_id, extra FROM sessions")
    }
    assert got == {
        "1": (None, {"session_type": {"id": None, "name": "Talk", "length": "00:30"}}),
        "2": (None, {"session_type": {"name": "Workshop", "length": "01:00"}}),
    }


def test_track_sessions_list_fills_a_missing_track_and_conflicts_are_warned(db_url, tmp_path):
    files = {
        "event": {"id": 1, "name": "Mirror"},
        "tracks": [{"id": 1, "name": "A", "sessions": [{"id": 1}, {"id": 2}]}, {"id": 2, "name": "B", "sessions": []}],
        "sessions": [{"id": 1, "title": "no track"}, {"id": 2, "title": "in B", "track": 2}],
    }
    code, payload = import_archive(write_zip(tmp_path / "mirror.zip", files), db_url)
    assert code == 0, payload
    got = dict(rows(db_url, "SELECT s.source_id, t.source_id FROM sessions s JOIN tracks t ON t.id = s.track_id"))
    assert got == {"1": "1", "2": "2"}
    assert [(w["file"], w["record_id"], w["field"]) for w in payload["warnings"]] == [("tracks", "1", "sessions")]


def test_validate_and_import_give_the_same_notices(db_url, tmp_path):
    path = write_zip(tmp_path / "server.zip", SERVER_EXPORT)
    _, validated, _ = run_cli("validate", str(path), "--database-url", db_url)
    code, imported = import_archive(path, db_url)
    assert code == 0 and validated["state"] == "VALID"
    assert validated["warnings"] == imported["warnings"]
    assert validated["unmapped"] == imported["unmapped"]


def _archives() -> list[Path]:
    found = sorted(CASES.glob("*/*.zip")) + [
        SAMPLES / f"{n}.zip" for n in ("FOSSASIASummit2014", "FOSSASIASummit2015", "FOSSASIASummit2016", "OTS16")
    ]
    return [p for p in found if p.exists()]


@pytest.mark.parametrize("path", _archives(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lossless(db_url, path):
    code, payload = import_archive(path, db_url, "--key", "lossless")
    assert code == 0, payload
    assert lost_fields(path, db_url, payload["result"]["id"]) == []


def test_lossless_check_finds_a_lost_link_and_a_lost_extra(tmp_path):
    url = f"sqlite:///{tmp_path / 'lost.db'}"
    path = write_zip(tmp_path / "server.zip", SERVER_EXPORT)
    code, payload = import_archive(path, url)
    assert code == 0 and lost_fields(path, url, payload["result"]["id"]) == []
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sessions SET track_id = NULL"))
        conn.execute(sa.text("UPDATE events SET extra = '{}'"))
    engine.dispose()
    lost = lost_fields(path, url, payload["result"]["id"])
    assert "sessions 500 track_id: 70" in lost and "events 12 identifier: 'a1b2c3d4'" in lost


def test_lossless_archives_are_present_in_ci():
    if os.environ.get("CI") == "true":
        assert len(_archives()) >= 12, "shared/ samples and cases must be beside the checkout in CI"


SMALL = {
    # The shape of shared/cases/hostile's small archives.
    "event": {"id": 1, "name": "Small Event", "start_time": "2020-01-01T09:00:00+00:00"},
    "tracks": [{"id": 1, "name": "Track 1"}],
    "session_types": [{"id": 1, "name": "Talk", "length": "00:30"}],
    "speakers": [
        {"id": 1, "name": "Alice", "sessions": [{"id": 1}]},
        {"id": 2, "name": "Bob", "sessions": [{"id": 2}]},
    ],
}


def test_instant_out_of_range_once_in_utc_is_a_located_warning(db_url, tmp_path):
    sessions = [
        {"id": 1, "title": "S1", "start_time": "0001-01-01T00:30:00+01:00", "end_time": "2020-01-01T10:30:00+00:00"},
        {"id": 2, "title": "S2", "start_time": "9999-12-31T23:30:00-01:00"},
    ]
    path = write_zip(tmp_path / "year1.zip", {**SMALL, "sessions": sessions})
    _, validated, _ = run_cli("validate", str(path), "--database-url", db_url)
    code, payload = import_archive(path, db_url)
    assert code == 0, payload
    assert validated["warnings"] == payload["warnings"]
    assert [(w["file"], w["record_id"], w["field"], w["message"]) for w in payload["warnings"]] == [
        (
            "sessions",
            "1",
            "starts_at",
            "Value error, 0001-01-01T00:30:00+01:00 is out of range once converted to UTC; raw value kept in extra",
        ),
        (
            "sessions",
            "2",
            "starts_at",
            "Value error, 9999-12-31T23:30:00-01:00 is out of range once converted to UTC; raw value kept in extra",
        ),
    ]
    got = {
        r[0]: (r[1], r[2] if isinstance(r[2], dict) else json.loads(r[2]))
        for r in rows(db_url, "SELECT source_id, starts_at, extra FROM sessions")
    }
    assert got == {
        "1": (None, {"start_time": "0001-01-01T00:30:00+01:00"}),
        "2": (None, {"start_time": "9999-12-31T23:30:00-01:00"}),
    }


def test_naive_time_without_event_zone_is_utc_whatever_the_server_session_zone(db_url, tmp_path):
    sessions = [
        {"id": 1, "title": "S1", "start_time": "2020-01-01T10:00:00", "end_time": "2020-01-01T10:30:00+00:00"},
        {"id": 2, "title": "S2"},
    ]
    url = _session_timezone(db_url, "Asia/Singapore")
    code, payload = import_archive(write_zip(tmp_path / "naive.zip", {**SMALL, "sessions": sessions}), url)
    assert code == 0, payload
    starts, ends = rows(db_url, "SELECT starts_at, ends_at FROM sessions WHERE source_id = '1'")[0]
    assert (_utc(starts), _utc(ends)) == (
        datetime(2020, 1, 1, 10, 0, tzinfo=UTC),
        datetime(2020, 1, 1, 10, 30, tzinfo=UTC),
    )
    assert [w["message"] for w in payload["warnings"]] == [
        "1 time without an offset and no event time zone; taken as UTC"
    ]
