"""The schedule report (pandas): exact figures for an archive whose conflicts are known by construction."""

from __future__ import annotations

import dagster as dg
import pytest
from archives import write_zip
from conftest import import_archive

from event_pipeline.assets.report import schedule_report_asset
from event_pipeline.db import get_engine
from event_pipeline.report.render import plot_png
from event_pipeline.report.schedule import schedule_report
from event_pipeline.resources import DatabaseResource


def _session(id_, title, start, end, room, track, speakers):
    return {
        "id": id_,
        "title": title,
        "starts-at": f"2021-03-{start}+01:00",
        "ends-at": f"2021-03-{end}+01:00",
        "microlocation": {"id": room} if room else None,
        "track": {"id": track} if track else None,
        "speakers": [{"id": s} for s in speakers],
    }


# Written so that each conflict is visible by reading it:
# - Ann (1) speaks in 1 (10:00-11:00) and 2 (10:30-11:30): one overlap of 30 minutes (Bob and Cy
#   speak once each);
# - Hall A (1) holds 1 and 3 (10:45-11:15): one double booking of 15 minutes;
#   2 and 4 share Hall B (2) without overlapping (11:30-12:00 starts when 2 ends);
# - 5 is on the 3rd, after the event (1st-2nd); 4 and 5 have no speakers.
# Days are the event's (Europe/Berlin): 1, 2, 3 on the 1st; 4 on the 2nd (00:30 Berlin is 23:30 UTC on the 1st).
FILES = {
    "event": {
        "id": 1,
        "name": "Report Conf",
        "starts-at": "2021-03-01T08:00:00+01:00",
        "ends-at": "2021-03-02T20:00:00+01:00",
        "timezone": "Europe/Berlin",
    },
    "microlocations": [{"id": 1, "name": "Hall A"}, {"id": 2, "name": "Hall B"}],
    "tracks": [{"id": 1, "name": "Main"}],
    "speakers": [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}, {"id": 3, "name": "Cy"}],
    "sessions": [
        _session(1, "Opening", "01T10:00:00", "01T11:00:00", 1, 1, [1]),
        _session(2, "Keynote", "01T10:30:00", "01T11:30:00", 2, 1, [1, 2]),
        _session(3, "Lightning", "01T10:45:00", "01T11:15:00", 1, None, [3]),
        _session(4, "Night owl", "02T00:30:00", "02T01:00:00", 2, 1, []),
        _session(5, "Afterparty", "03T10:00:00", "03T11:00:00", None, None, []),
    ],
}


@pytest.fixture
def imported(tmp_path, db_url):
    path = write_zip(tmp_path / "reportconf.zip", FILES)
    code, out = import_archive(path, db_url)
    assert code == 0, out
    return out["result"]["id"]


def test_report_figures(db_url, imported):
    with get_engine(db_url).connect() as conn:
        report = schedule_report(conn, imported)
    assert report.per_day.to_dict("records") == [
        {"day": "2021-03-01", "sessions": 3},
        {"day": "2021-03-02", "sessions": 1},
        {"day": "2021-03-03", "sessions": 1},
    ]
    assert report.per_room.to_dict("records") == [
        {"room": "(no room)", "sessions": 1, "hours": 1.0},
        {"room": "Hall A", "sessions": 2, "hours": 1.5},
        {"room": "Hall B", "sessions": 2, "hours": 1.5},
    ]
    assert report.per_track.to_dict("records") == [
        {"track": "(no track)", "sessions": 2},
        {"track": "Main", "sessions": 3},
    ]
    overlaps = report.speaker_overlaps.to_dict("records")
    assert [(o["first"].split(" [")[0], o["second"].split(" [")[0], o["overlap_minutes"]) for o in overlaps] == [
        ("Opening", "Keynote", 30)
    ]
    assert overlaps[0]["speaker"].startswith("Ann [")
    rooms = report.room_conflicts.to_dict("records")
    assert [
        (r["room"], r["first"].split(" [")[0], r["second"].split(" [")[0], r["overlap_minutes"]) for r in rooms
    ] == [("Hall A", "Opening", "Lightning", 15)]
    assert [s.split(" [")[0] for s in report.outside_event["session"]] == ["Afterparty"]
    assert sorted(s.split(" [")[0] for s in report.without_speakers["session"]) == ["Afterparty", "Night owl"]
    assert report.conflicts == {"speaker_overlaps": 1, "room_conflicts": 1, "outside_event": 1, "without_speakers": 2}
    assert plot_png(report).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_asset_materializes_per_partition_with_warning_checks(db_url, imported, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("archives", ["reportconf"])
    result = dg.materialize(
        [schedule_report_asset],
        partition_key="reportconf",
        instance=instance,
        resources={"database": DatabaseResource(url=db_url)},
        selection=["schedule_report"],
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("schedule_report")
    metadata = materialization.metadata
    assert metadata["event_id"].value == imported
    assert metadata["room_conflicts"].value == 1 and metadata["speaker_overlaps"].value == 1
    assert "| Hall A | " in metadata["report"].value
    assert metadata["plot"].value.startswith("![sessions per day](data:image/png;base64,")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"no_room_double_booking", "no_speaker_overlaps"}
    assert not checks["no_room_double_booking"].passed and not checks["no_speaker_overlaps"].passed
    assert checks["no_room_double_booking"].severity == dg.AssetCheckSeverity.WARN


def test_report_of_a_key_never_imported_fails_clearly(db_url):
    get_engine(db_url)  # the schema exists; the key does not
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("archives", ["nothing"])
    with pytest.raises(dg.Failure, match="has not been imported yet"):
        dg.materialize(
            [schedule_report_asset],
            partition_key="nothing",
            instance=instance,
            resources={"database": DatabaseResource(url=db_url)},
        )
