"""Asset outputs as a re-execution from failure reads them back: the validated archive is pickled
without its records and reads them again from the archive, only if its bytes are the same."""

from __future__ import annotations

import gc
import pickle
import shutil

import dagster as dg
import pytest
from conftest import BROKEN_SAMPLE, sample

from event_pipeline import bulk
from event_pipeline.db import get_engine
from event_pipeline.importer import plan_all, publish_step, validate_archive, whole
from event_pipeline.model.catalog import BY_NAME, upstream
from event_pipeline.plan.diff import restore_rows
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


def test_a_plan_pickles_without_its_rows_and_builds_the_same_rows_again(tmp_path):
    """A model's plan is pickled without its rows (most of an import's pickles); restore_rows builds them
    again from the same records and id maps, with the ids the plan gave them: inserts, then updates."""
    path = shutil.copy(sample("OTS16"), tmp_path / "OTS16.zip")
    engine = get_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    validated = validate_archive(engine, path, "OTS16")
    first = plan_all(engine, validated)
    sessions = BY_NAME["sessions"]
    records = validated.records(sessions)
    maps = {name: first[name].id_map for name in upstream(sessions)}
    assert len(first["sessions"].inserts) == 82

    data = pickle.dumps(first["sessions"])
    assert len(data) < len(pickle.dumps(first["sessions"].inserts)) / 4  # the rows are not in it
    restored = pickle.loads(data)
    assert not restored.has_rows
    restore_rows(restored, sessions, records, maps)
    assert restored.inserts == first["sessions"].inserts and restored.updates == []
    assert restored.id_map == first["sessions"].id_map

    publish_step(engine, validated, first, "run-1")
    again = validate_archive(engine, path, "OTS16", force=True)
    edited = again.records(sessions)
    edited[5].values["title"] = "Another title"  # one session changed: an update, the rest unchanged
    second = plan_all(engine, again)["sessions"]
    assert (len(second.inserts), len(second.updates), second.unchanged) == (0, 1, 81)
    restored = pickle.loads(pickle.dumps(second))
    restore_rows(restored, sessions, edited, {name: first[name].id_map for name in upstream(sessions)})
    assert restored.updates == second.updates and restored.updates[0]["title"] == "Another title"
    assert restored.updates[0]["id"] == first["sessions"].id_map[edited[5].source_id]
    with pytest.raises(ValueError, match="81 records, but the plan was made for 82"):
        restore_rows(pickle.loads(pickle.dumps(second)), sessions, edited[1:], maps)


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
