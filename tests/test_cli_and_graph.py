"""The command line and the shape of the Dagster graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import BROKEN_SAMPLE, REFERENCE_ORDER, REPO, import_archive, run_cli, sample, scalar

from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.import_definitions import import_defs
from event_pipeline.model.catalog import MODELS
from event_pipeline.settings import example_archive

BIN = Path(sys.executable).parent


IMPORT_CHAIN = ["archive", *REFERENCE_ORDER, "media", "import_result"]


def test_the_graph_is_the_import_order_and_nothing_else():
    graph = defs.resolve_asset_graph()
    order = [k.to_user_string() for k in graph.toposorted_asset_keys]
    assert [name for name in order if name in IMPORT_CHAIN] == IMPORT_CHAIN
    # The export (its own group) comes after the import, and is no part of it.
    assert order.index("export") > order.index("import_result")
    assert [m.name for m in MODELS] == REFERENCE_ORDER
    # One chain: each import asset's only parent is the one before it (archive and event no longer fan out
    # to every model, import_result has one input), so the UI reads the import order at a glance.
    for before, after in zip(IMPORT_CHAIN, IMPORT_CHAIN[1:], strict=False):
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(after)).parent_keys}
        assert parents == {before}, (after, parents)
    assert not graph.get(dg.AssetKey("archive")).parent_keys
    children = {k.to_user_string() for k in graph.get(dg.AssetKey("import_result")).child_keys}
    assert children == {"schedule_report", "export"}
    # Only two edges carry data as inputs; the others are dependencies, the data coming from the IO manager.
    inputs = {
        name: {i.name for i in defs.resolve_assets_def(name).op.input_defs if not i.dagster_type.is_nothing}
        for name in IMPORT_CHAIN
    }
    assert inputs == {name: set() for name in IMPORT_CHAIN} | {"event": {"archive"}, "import_result": {"media"}}


def test_job_is_partitioned_and_in_process():
    job = defs.resolve_job_def(IMPORT_JOB_NAME)
    assert job.executor_def.name == "in_process"
    assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
    assert job.partitions_def.name == "archives"


def test_the_command_line_runs_the_code_locations_import_job():
    # The CLI resolves the job from import_defs (the import alone, quicker to load): the very same job,
    # down to the snapshot Dagster stores with each run.
    ours, location = import_defs.resolve_job_def(IMPORT_JOB_NAME), defs.resolve_job_def(IMPORT_JOB_NAME)
    assert ours.get_job_snapshot_id() == location.get_job_snapshot_id()
    assert ours.resource_defs.keys() == location.resource_defs.keys()
    assert ours.executor_def.name == location.executor_def.name


def test_dagster_definitions_validate_passes():
    proc = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_console_script_prints_one_json_line_and_records_the_run(tmp_path, isolated_home):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "EVENT_PIPELINE_DATABASE_URL": url}
    proc = subprocess.run(
        [str(BIN / "event-pipeline"), "import"], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # Dagster's logs go to stderr
    result = json.loads(lines[0])
    assert result["state"] == "SUCCESS"
    assert result["key"] == "example-event"
    assert result["result"]["event_name"] == "Example Open Tech Day"
    assert result["result"]["url"].endswith("/events/" + scalar(url, "select identifier from events"))
    assert result["counts"]["sessions"] == 3 and result["counts"]["session_speakers"] == 3
    with dg.DagsterInstance.from_config(str(isolated_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].tags["dagster/partition"] == "example-event"
        assert runs[0].job_name == IMPORT_JOB_NAME

    proc = subprocess.run(
        [str(BIN / "event-pipeline"), "import", str(sample(BROKEN_SAMPLE))],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout
    failure = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failure["state"] == "FAILURE" and "session_types" in failure["error"]


def test_base_url_setting(db_url, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_BASE_URL", "https://events.example.org/")
    code, result = import_archive(example_archive(), db_url)
    assert code == 0
    assert result["result"]["url"].startswith("https://events.example.org/events/")


def test_validate_is_a_dry_run(db_url):
    path = sample("OTS16")
    code, result, _ = run_cli("validate", str(path), "--database-url", db_url)
    assert code == 0, result
    assert result["state"] == "VALID"
    assert result["diff"]["created"] == sum(v for k, v in result["counts"].items() if k != "session_speakers")
    assert result["counts"]["sessions"] == 82
    assert sa.inspect(get_engine(db_url, create_schema=False)).get_table_names() == []  # not even the schema

    assert import_archive(path, db_url)[0] == 0
    blocks = scalar(db_url, "select sum(next_id) from id_blocks")
    code, again, _ = run_cli("validate", str(path), "--database-url", db_url)
    assert code == 0
    assert again["diff"]["created"] == 0 and again["diff"]["unchanged"] == result["diff"]["created"]
    assert scalar(db_url, "select sum(next_id) from id_blocks") == blocks  # no ids reserved
    assert scalar(db_url, "select count(*) from import_jobs") == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_validate_reports_every_problem(db_url):
    code, result, _ = run_cli("validate", str(sample(BROKEN_SAMPLE)), "--database-url", db_url)
    assert code == 1
    assert result["state"] == "INVALID"
    assert result["errors"][0]["file"] == "session_types"
