"""Asset outputs as a re-execution from failure reads them back: the validated archive is pickled
without its records and reads them again from the archive, only if its bytes are the same."""

from __future__ import annotations

import pickle
import shutil

import pytest
from conftest import sample

from event_pipeline.catalog import BY_NAME
from event_pipeline.db import get_engine
from event_pipeline.pipeline import plan_all, validate_archive
from event_pipeline.problems import ImportFailed


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
    assert len(restored.normalised.links) == 103
    assert plan_all(engine, restored, reserve=False)["sessions"].count == 82

    stale = pickle.loads(data)
    (tmp_path / "OTS16.zip").write_bytes(sample("OTS16").read_bytes() + b"\0")  # other bytes, same path
    with pytest.raises(ImportFailed, match="the archive changed since this run validated it"):
        stale.normalised  # noqa: B018
