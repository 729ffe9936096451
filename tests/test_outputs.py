"""Asset outputs as a re-execution from failure reads them back: the validated archive is pickled
without its records and reads them again from the archive, only if its bytes are the same."""

from __future__ import annotations

import gc
import pickle
import shutil

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import BROKEN_SAMPLE, sample

from event_pipeline import bulk
from event_pipeline.db import get_engine
from event_pipeline.importer import plan_all, publish_step, validate_archive, whole
from event_pipeline.model.catalog import BY_NAME, upstream
from event_pipeline.model.schema import TABLES
from event_pipeline.plan.diff import INSERT, UPDATE, planned_rows
from event_pipeline.problems import ImportFailed, Problem


def test_validated_archive_pickles_small_and_reads_its_records_again(tmp_path):
    path = shutil.copy(sample("OTS16"), tmp_path / "OTS16.zip")
    engine = get_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    validated = validate_archive(engine, path, "OTS16")
    data = pickle.dumps(validated)
    assert len(data) < 20_000  # the records are not in it (they pickle to ~400 kB)
    restored = pickle.loads(data)
    assert restored.warnings == validated.warnings and restored.target == validated.target
    assert [r.values for r in restored.records(BY_NAME["sessions"])] == [
        r.values for r in validated.records(BY_NAME["sessions"])
    ]
    assert len(restored.normalised.links["session_speakers"]) == 103
    assert plan_all(engine, restored, reserve=False)["sessions"].count == 82

    stale = pickle.loads(data)
    (tmp_path / "OTS16.zip").write_bytes(sample("OTS16").read_bytes() + b"\0")  # other bytes, same path
    with pytest.raises(ImportFailed, match="the archive changed since this run validated it"):
        stale.normalised  # noqa: B018


def test_a_plan_keeps_no_rows_and_builds_them_as_they_are_written(tmp_path):
    """A model's plan keeps each record's kind, id and hash, not its row: planned_rows builds the rows from
    the records and id maps, the same from a plan read back from its pickle, and those are the rows the
    database gets; an edited record is one UPDATE with its row's id, the others unchanged."""
    path = shutil.copy(sample("OTS16"), tmp_path / "OTS16.zip")
    engine = get_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    validated = validate_archive(engine, path, "OTS16")
    first = plan_all(engine, validated)
    sessions = BY_NAME["sessions"]
    records = validated.records(sessions)
    maps = {name: first[name].id_map for name in upstream(sessions)}
    plan = first["sessions"]
    assert (plan.created, plan.updated, plan.unchanged) == (82, 0, 0)

    data = pickle.dumps(plan)
    assert len(data) < 10_000  # no rows: 82 sessions' rows pickle to ~90 kB
    rows = list(planned_rows(pickle.loads(data), sessions, records, maps, INSERT))
    assert rows == list(planned_rows(plan, sessions, records, maps, INSERT))
    assert list(planned_rows(plan, sessions, records, maps, UPDATE)) == []
    assert [row["id"] for row in rows] == [plan.id_map[r.source_id] for r in records]
    assert [row["title"] for row in rows] == [r.values["title"] for r in records]

    publish_step(engine, validated, first, "run-1")
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(sa.select(TABLES["sessions"]))}
    assert {row["id"]: (row["title"], row["content_hash"]) for row in rows} == {
        id_: (r.title, r.content_hash) for id_, r in stored.items()
    }

    again = validate_archive(engine, path, "OTS16", force=True)
    edited = again.records(sessions)
    # one session changed: an update, the rest unchanged
    edited[5].replace(values={**edited[5].values, "title": "Another title"})
    second = plan_all(engine, again)["sessions"]
    assert (second.created, second.updated, second.unchanged) == (0, 1, 81)
    (update,) = planned_rows(pickle.loads(pickle.dumps(second)), sessions, edited, maps, UPDATE)
    assert update["title"] == "Another title" and update["id"] == plan.id_map[edited[5].source_id]
    assert update["content_hash"] != stored[update["id"]].content_hash
    with pytest.raises(ValueError, match="81 records, but the plan was made for 82"):
        list(planned_rows(second, sessions, edited[1:], maps, UPDATE))


def test_nothing_stays_frozen_after_an_import(tmp_path, monkeypatch):
    """Validation freezes what it parsed (out of the cyclic GC's way); every import ends with it released,
    so a long-lived worker process (Celery, tests) keeps collecting."""
    engine = get_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    broken = shutil.copy(sample(BROKEN_SAMPLE), tmp_path / "broken.zip")
    good = shutil.copy(sample("OTS16"), tmp_path / "OTS16.zip")
    gc.unfreeze()
    with pytest.raises(ImportFailed):
        validate_archive(engine, broken, "broken")
    assert gc.get_freeze_count() == 0 and gc.isenabled()  # a failed validation froze nothing

    validated = validate_archive(engine, good, "OTS16")
    assert gc.get_freeze_count() > 0  # the parsed archive is frozen while the import runs
    assert not gc.isenabled()  # and the collector is off until the import ends
    publish_step(engine, validated, plan_all(engine, validated), "run-1")
    assert gc.get_freeze_count() == 0 and gc.isenabled()

    path = tmp_path / "drop" / "OTS16-bulk.zip"
    path.parent.mkdir()
    shutil.copy(sample("OTS16"), path)
    monkeypatch.setattr(whole, "plan_all", _failing)  # a failure after validation, before publishing
    with pytest.raises(dg.Failure):
        bulk.import_one_archive(engine, "bulk", str(path), "job-1")
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def _failing(*args, **kwargs):
    raise ImportFailed([Problem(None, None, None, "planning failed on purpose")])
