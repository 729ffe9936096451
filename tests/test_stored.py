"""The SQL around the asset checks (publish/stored.py, publish/statistics.py): what an imported event holds,
rows pointing into another event (found on both backends in a database holding two events), and the planner's
statistics refreshed after a large import."""

from __future__ import annotations

import json
import logging
import zipfile

import pytest
from conftest import import_archive, rows, sample

from event_pipeline.db import get_engine
from event_pipeline.model.catalog import MODELS
from event_pipeline.plan.diff import ModelPlan
from event_pipeline.publish.statistics import refresh
from event_pipeline.publish.stored import foreign_rows, stored_counts


def test_rows_pointing_into_another_event_are_counted_from_either_side(db_url):
    code, first = import_archive(sample("OTS16"), db_url, "--key", "first")
    assert code == 0, first
    code, second = import_archive(sample("FOSSASIASummit2016"), db_url, "--key", "second")
    assert code == 0, second
    a, b = first["result"]["id"], second["result"]["id"]
    with zipfile.ZipFile(sample("OTS16")) as archive:
        sessions = len(json.loads(archive.read("sessions")))
    with get_engine(db_url).connect() as conn:
        assert stored_counts(conn, a)["sessions"] == sessions  # the archive's own count, not the database's
        assert set(foreign_rows(conn, a).values()) == set(foreign_rows(conn, b).values()) == {0}

    # One of a's sessions gets b's first track and is linked to b's first speaker.
    [(session,)] = rows(db_url, "select min(id) from sessions where event_id = :e", e=a)
    [(track,)] = rows(db_url, "select min(id) from tracks where event_id = :e", e=b)
    [(speaker,)] = rows(db_url, "select min(id) from speakers where event_id = :e", e=b)
    with get_engine(db_url).begin() as conn:
        conn.exec_driver_sql(f"update sessions set track_id = {track} where id = {session}")
        conn.exec_driver_sql(f"insert into session_speakers (session_id, speaker_id) values ({session}, {speaker})")
    with get_engine(db_url).connect() as conn:
        in_a, in_b = foreign_rows(conn, a), foreign_rows(conn, b)
    assert {k: n for k, n in in_a.items() if n} == {"sessions.track_id": 1, "session_speakers": 1}
    assert {k: n for k, n in in_b.items() if n} == {"session_speakers": 1}  # seen from the speaker's event too


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_tables_an_import_changed_much_are_analysed_after_it(db_url):
    """More than 50 rows changed in a table never analysed: its statistics are refreshed after the commit
    (publish/statistics.py), so the checks and the next import do not plan for an empty table."""
    with zipfile.ZipFile(sample("OTS16")) as archive:
        sizes = {model: len(json.loads(archive.read(model))) for model in ("sessions", "speakers", "tracks")}
    assert sizes["sessions"] > 50 and sizes["speakers"] > 50 and sizes["tracks"] <= 50  # the sample's shape
    code, result = import_archive(sample("OTS16"), db_url)
    assert code == 0, result
    query = "select relname, last_analyze from pg_stat_user_tables where last_analyze is not null"
    analysed = dict(rows(db_url, query))
    links = {"session_speakers"} if result["counts"]["session_speakers"] > 50 else set()
    assert set(analysed) == {"sessions", "speakers", *links}
    code, again = import_archive(sample("OTS16"), db_url)  # unchanged: nothing written, nothing analysed
    assert code == 0 and again["unchanged_archive"] is True
    assert dict(rows(db_url, query)) == analysed


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_table_locked_elsewhere_is_left_to_autovacuum(db_url, caplog):
    """Another session's VACUUM holds the lock ANALYZE needs: the refresh gives up after its lock timeout,
    says so in the log and raises nothing (the import has committed)."""
    engine = get_engine(db_url)
    plans = {spec.name: ModelPlan(spec.name, 1, {}) for spec in MODELS}
    plans["sessions"].created = 1_000
    with engine.connect() as other:
        other.exec_driver_sql("LOCK TABLE sessions IN SHARE UPDATE EXCLUSIVE MODE")  # the lock a VACUUM holds
        with caplog.at_level(logging.WARNING, logger="event_pipeline.publish.statistics"):
            assert refresh(engine, plans) == []
        other.rollback()
    assert "statistics of sessions not refreshed" in caplog.text and "lock timeout" in caplog.text
    assert refresh(engine, plans) == ["sessions"]  # once the lock is free
