"""Two imports of the same key at once end up one after the other, never duplicated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archives import kebab_event, write_zip
from conftest import rows, sample, scalar

from event_pipeline.db import get_engine
from event_pipeline.importer import plan_all, publish_step, validate_archive


def _prepare(url, path, key):
    engine = get_engine(url)
    validated = validate_archive(engine, path, key, force=True)
    return engine, validated, plan_all(engine, validated)


def test_two_first_imports_of_one_key_planned_together(db_url):
    path = sample("OTS16")
    first = _prepare(db_url, path, "ots")
    second = _prepare(db_url, path, "ots")  # planned before the first commits: both think the event is new
    assert first[1].target.event_id != second[1].target.event_id
    publish_step(*first, "run-1")
    outcome = publish_step(*second, "run-2")  # conflicts on the key, plans again, updates in place
    assert outcome["result"]["id"] == first[1].target.event_id
    assert scalar(db_url, "select count(*) from events") == 1
    assert scalar(db_url, "select count(*) from sessions") == 82
    assert scalar(db_url, "select count(*) from session_speakers") == 103
    assert outcome["diff"]["created"] == 0


def test_stale_plan_is_replanned_and_last_writer_wins(db_url, tmp_path):
    files = kebab_event()
    v1 = write_zip(tmp_path / "1" / "conf.zip", files)
    publish_step(*_prepare(db_url, v1, "conf"), "run-0")
    files["sessions"][0]["title"] = "from A"
    a = _prepare(db_url, write_zip(tmp_path / "a" / "conf.zip", files), "conf")
    files["sessions"][0]["title"] = "from B"
    del files["sessions"][2]
    b = _prepare(db_url, write_zip(tmp_path / "b" / "conf.zip", files), "conf")
    publish_step(*a, "run-a")
    outcome = publish_step(*b, "run-b")  # B's plans were made against revision 1; A moved it to 2
    assert outcome["diff"]["by_model"]["sessions"]["deleted"] == 1
    assert rows(db_url, "select title from sessions order by id") == [("from B",), ("Deep dive",)]
    assert scalar(db_url, "select revision from events") == 3


def test_simultaneous_cli_imports_of_one_key(db_url, tmp_path):
    """Two real processes import the same archive under one key at the same time."""
    path = sample("FOSSASIASummit2016")
    env = {**os.environ, "EVENT_PIPELINE_DATABASE_URL": db_url}
    cli = str(Path(sys.executable).parent / "event-pipeline")
    procs = [
        subprocess.Popen(
            [cli, "import", str(path), "--key", "same"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=240)[0].strip().splitlines()[-1]) for p in procs]
    assert [r["state"] for r in results] == ["SUCCESS", "SUCCESS"], results
    assert results[0]["result"]["id"] == results[1]["result"]["id"]
    assert scalar(db_url, "select count(*) from events") == 1
    assert scalar(db_url, "select count(*) from sessions") == 491
    assert scalar(db_url, "select count(*) from session_speakers") == 299
    assert (
        scalar(
            db_url, "select count(*) from (select source_key from sessions group by source_key having count(*) > 1) d"
        )
        == 0
    )
