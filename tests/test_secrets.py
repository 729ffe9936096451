"""A database password never shows up in output, logs, run storage or import_jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from conftest import BROKEN_SAMPLE, rows, sample

SECRET = "Sup3r-Secret-pw"
CLI = str(Path(sys.executable).parent / "event-pipeline")


def _with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")  # trust auth ignores it


def _run_text(instance: dg.DagsterInstance) -> str:
    parts = []
    for run in instance.get_runs():
        parts.append(repr(run.run_config) + repr(run.tags))
        for entry in instance.all_logs(run.run_id):
            parts.append(repr(entry))
    return "\n".join(parts)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_password_stays_secret(db_url, tmp_path):
    url = _with_password(db_url)
    outputs = []
    for archive in (sample("OTS16"), sample(BROKEN_SAMPLE)):
        proc = subprocess.run(
            [CLI, "import", str(archive), "--database-url", url], capture_output=True, text=True, timeout=180
        )
        outputs += [proc.stdout, proc.stderr]
    bad_port = url.replace(":5432/", ":1/")
    proc = subprocess.run(
        [CLI, "import", str(sample("OTS16")), "--key", "x"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "EVENT_PIPELINE_DATABASE_URL": bad_port},
    )
    assert proc.returncode == 1 and '"FAILURE"' in proc.stdout
    outputs += [proc.stdout, proc.stderr]
    jobs = rows(db_url, "select * from import_jobs")
    assert len(jobs) == 2
    with dg.DagsterInstance.get() as instance:
        stored = _run_text(instance)
    assert "OTS16" in stored  # the check looks at real run records
    for text in [*outputs, repr(jobs), stored]:
        assert SECRET not in text
