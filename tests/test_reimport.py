"""Re-importing a key updates in place: same ids, edits, deletions, no duplicates."""

from __future__ import annotations

from archives import kebab_event, write_zip
from conftest import import_archive, rows, sample, scalar


def _ids(url: str, table: str) -> dict[str, int]:
    return dict(rows(url, f"select source_key, id from {table}"))


def test_reimport_same_archive_is_a_noop(db_url, tmp_path):
    path = sample("FOSSASIASummit2016")
    code, first = import_archive(path, db_url)
    assert code == 0, first
    before = {t: _ids(db_url, t) for t in ("sessions", "speakers", "tracks")}
    code, second = import_archive(path, db_url)
    assert code == 0, second
    assert second["result"]["id"] == first["result"]["id"]
    assert second["unchanged_archive"] is True
    assert second["diff"]["created"] == second["diff"]["updated"] == second["diff"]["deleted"] == 0
    assert second["counts"] == first["counts"]
    assert {t: _ids(db_url, t) for t in before} == before
    assert scalar(db_url, "select count(*) from events") == 1
    assert scalar(db_url, "select count(*) from sessions") == 491
    assert scalar(db_url, "select revision from events") == 1  # nothing was written

    code, forced = import_archive(path, db_url, "--force")
    assert code == 0, forced
    assert forced["unchanged_archive"] is False
    assert forced["diff"]["unchanged"] == sum(forced["counts"][t] for t in forced["counts"] if t != "session_speakers")
    assert forced["diff"]["created"] == forced["diff"]["updated"] == forced["diff"]["deleted"] == 0
    assert scalar(db_url, "select count(*) from sessions") == 491
    assert scalar(db_url, "select count(*) from session_speakers") == first["counts"]["session_speakers"]
    states = [r[0] for r in rows(db_url, "select state from import_jobs order by id")]
    assert states == ["SUCCESS", "SUCCESS", "SUCCESS"]


def test_reimport_with_edits_and_deletions_updates_in_place(db_url, tmp_path):
    files = kebab_event()
    code, first = import_archive(write_zip(tmp_path / "conf.zip", files), db_url)
    assert code == 0, first
    ids_before = {t: _ids(db_url, t) for t in ("sessions", "speakers", "tracks", "microlocations")}

    files["sessions"][0]["title"] = "Opening (updated)"
    files["sessions"][0]["track"] = {"id": 2}
    del files["sessions"][2]  # session 3 removed
    files["speakers"] = [s for s in files["speakers"] if s["id"] != 3]  # speaker 3 and its link removed
    files["tracks"][0]["color"] = "#FFFFFF"
    files["microlocations"].append({"id": 9, "name": "New room"})
    files["sessions"].append({"id": 4, "title": "Added", "microlocation": {"id": 9}, "speakers": [{"id": 1}]})
    edited = write_zip(tmp_path / "v2" / "conf.zip", files)
    code, second = import_archive(edited, db_url)
    assert code == 0, second

    assert second["result"]["id"] == first["result"]["id"]
    assert scalar(db_url, "select count(*) from events") == 1
    sessions = _ids(db_url, "sessions")
    assert set(sessions) == {"1", "2", "4"}
    assert sessions["1"] == ids_before["sessions"]["1"]  # same row, updated in place
    assert sessions["2"] == ids_before["sessions"]["2"]
    assert _ids(db_url, "speakers") == {k: v for k, v in ids_before["speakers"].items() if k != "3"}
    assert _ids(db_url, "tracks") == ids_before["tracks"]
    title, track = rows(
        db_url, "select s.title, t.source_id from sessions s join tracks t on t.id = s.track_id where s.source_id = '1'"
    )[0]
    assert (title, track) == ("Opening (updated)", "2")
    assert scalar(db_url, "select color from tracks where source_id = '1'") == "#FFFFFF"
    links = {
        (a, b)
        for a, b in rows(
            db_url,
            "select s.source_id, p.source_id from session_speakers l join sessions s on s.id = l.session_id "
            "join speakers p on p.id = l.speaker_id",
        )
    }
    assert links == {("1", "2"), ("1", "1"), ("4", "1")}
    by_model = second["diff"]["by_model"]
    assert by_model["sessions"] == {"created": 1, "updated": 1, "deleted": 1, "unchanged": 1}
    assert by_model["speakers"]["deleted"] == 1
    assert by_model["tracks"] == {"created": 0, "updated": 1, "deleted": 0, "unchanged": 1}
    assert by_model["microlocations"]["created"] == 1
    assert second["diff"]["links"] == {"added": 1, "removed": 1}


def test_different_keys_are_different_events(db_url, tmp_path):
    path = write_zip(tmp_path / "conf.zip", kebab_event())
    assert import_archive(path, db_url, "--key", "a")[0] == 0
    code, result = import_archive(path, db_url, "--key", "b")
    assert code == 0
    assert result["key"] == "b"
    assert scalar(db_url, "select count(*) from events") == 2
    assert scalar(db_url, "select count(*) from sessions") == 6
