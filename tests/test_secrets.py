"""A database password never shows up in output, logs, run storage or import_jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from conftest import BROKEN_SAMPLE, import_archive, rows, sample

SECRET = "Sup3r-Secret-pw"
CLI = str(Path(sys.executable).parent / "event-pipeline")


def _with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")  # trust auth ignores it


def _run_text(instance: dg.DagsterInstance) -> str:
    parts = []
    for run in instance.get_runs():
        parts.append(repr(run.run_config) + repr(run.tags))
        # The job snapshot holds every config field's default: a URL given to a resource as a value would be here.
        parts.append(repr(instance.get_job_snapshot(run.job_snapshot_id)))
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
    assert "OTS16" in stored and "DatabaseResource" in stored  # the check looks at real runs and their snapshots
    for text in [*outputs, repr(jobs), stored]:
        assert SECRET not in text


def test_the_cli_hands_the_url_to_its_run_not_to_the_environment(db_url):
    """`import --database-url` passes the URL to its run's resource object: the process environment (which
    everything it starts inherits) never holds it, and the import lands in that database."""
    assert "EVENT_PIPELINE_DATABASE_URL" not in os.environ  # conftest's isolated_home removes it
    code, result = import_archive(sample("OTS16"), db_url)
    assert (code, result["state"]) == (0, "SUCCESS")
    assert "EVENT_PIPELINE_DATABASE_URL" not in os.environ
    assert [tuple(r) for r in rows(db_url, "select key, state from import_jobs")] == [("OTS16", "SUCCESS")]


# --- every form of password, one masking function --------------------------------------------


def _forms(db_url: str) -> dict[str, str]:
    """The same database, its password given in each form the driver takes (trust auth ignores it)."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    options = url.query["options"]
    base = f"{url.database}?options={options.replace('=', '%3D')}"
    return {
        "userinfo": f"postgresql://{url.username}:{SECRET}@{url.host}:{url.port}/{base}",
        "query": f"postgresql://{url.username}@{url.host}:{url.port}/{base}&password={SECRET}",
        "host-and-password": f"postgresql:///{base}&host={url.host}&port={url.port}&user={url.username}"
        f"&password={SECRET}",
    }


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_every_url_form_works_and_its_password_stays_secret(db_url):
    outputs = []
    for form, url in _forms(db_url).items():
        proc = subprocess.run(
            [CLI, "import", str(sample("OTS16")), "--key", form, "--database-url", url],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-3000:]
        outputs += [proc.stdout, proc.stderr]
    assert sorted(r[0] for r in rows(db_url, "select import_key from events")) == sorted(_forms(db_url))
    jobs = rows(db_url, "select * from import_jobs")
    with dg.DagsterInstance.get() as instance:
        stored = _run_text(instance)
    # The real log lines naming the database are there, masked.
    assert stored.count(":***@127.0.0.1") >= 1 and stored.count("password=***") >= 2
    for text in [*outputs, repr(jobs), stored]:
        assert SECRET not in text


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_failing_url_of_each_form_is_reported_masked(db_url):
    """The server refuses the connection: the error is printed, with no password in it."""
    for url in _forms(db_url).values():
        bad_port = url.replace(":5432/", ":1/").replace("port=5432", "port=1")
        proc = subprocess.run(
            [CLI, "import", str(sample("OTS16")), "--key", "x"],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "EVENT_PIPELINE_DATABASE_URL": bad_port},
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 1 and result["state"] == "FAILURE"
        assert "Connection refused" in result["error"]
        assert SECRET not in proc.stdout + proc.stderr


def test_a_libpq_keyword_dsn_is_refused_masked():
    dsn = f"host=127.0.0.1 port=5432 user=postgres password={SECRET} dbname=events"
    message = (
        "not a database URL: 'host=127.0.0.1 port=5432 user=postgres password=*** dbname=events'; give a "
        "SQLite or PostgreSQL URL such as postgresql://user:password@host:5432/dbname or sqlite:///path/to/events.db"
    )
    for command in ("import", "validate"):
        proc = subprocess.run(
            [CLI, command, str(sample("OTS16")), "--database-url", dsn], capture_output=True, text=True, timeout=180
        )
        assert proc.returncode == 1
        assert json.loads(proc.stdout) == {
            "state": "FAILURE",
            "error": f"database_url: {message}",
            "errors": [{"file": None, "record_id": None, "field": "database_url", "message": message}],
            "warnings": [],
            "errors_total": 1,
            "warnings_total": 0,
            "key": "OTS16",
        }
        assert SECRET not in proc.stdout + proc.stderr
