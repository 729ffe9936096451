"""Every way the UI (and the CLI) starts an import behaves like ``import_archive``, with the real
webserver, daemon and an SMTP server on loopback: one stack per events database.

Runs are launched through the webserver's GraphQL API exactly as the UI's buttons do: "Materialize
all" launches the implicit asset job (``__ASSET_JOB``) with an asset selection and the partition
tag; a check's "Execute" launches it with only an asset check selection; "Test schedule" is
``scheduleDryRun``. The daemon runs the queue and the run-status sensors that send the mails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import PG_ADMIN, REPO, scalar, throwaway_database
from processes import BIN, free_port, graphql, process, smtp_server, tail, wait_for

from event_pipeline.db import get_engine

IMPORT_ASSETS = [
    "archive",
    "event",
    "social_links",
    "custom_forms",
    "microlocations",
    "sponsors",
    "speakers",
    "tracks",
    "session_types",
    "sessions",
    "media",
    "import_result",
]
CHECKS = ["references_stay_in_event", "row_counts_match_archive"]
TIMEOUT = 120

REPOS = """
{
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name location { name } } }
    ... on PythonError { message }
  }
}
"""
ADD_PARTITION = """
mutation($selector: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: "archives", partitionKey: $key) {
    __typename ... on PythonError { message }
  }
}
"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
RUN = """
query($id: ID!) {
  runOrError(runId: $id) {
    ... on Run {
      status
      eventConnection(afterCursor: null, limit: 5000) {
        events {
          __typename
          ... on MessageEvent { message }
          ... on ExecutionStepFailureEvent { error { message } }
        }
      }
    }
  }
}
"""
DRY_RUN = """
mutation($selector: ScheduleSelector!, $timestamp: Float!) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey tags { key value } } skipReason error { message } }
    }
    ... on PythonError { message }
  }
}
"""


def small_archive(path: Path, name: str) -> dict:
    """A small valid archive for event ``name``; returns its files (the expectations' source)."""
    files = kebab_event()
    files["event"] = {**files["event"], "name": name}
    write_zip(path, files)
    return files


def broken_archive(path: Path, note: str) -> None:
    """An archive whose sessions file is not JSON (``note`` changes its bytes)."""
    files = kebab_event()
    files["sessions"] = '[{"id": 1, "title": ' + note
    write_zip(path, files)


class Stack:
    def __init__(self, root: Path, url: str, port: int, mailbox, env: dict[str, str], logs: list[Path]):
        self.root, self.url, self.port, self.mailbox, self.env, self.logs = root, url, port, mailbox, env, logs
        data = graphql(port, REPOS)["repositoriesOrError"]["nodes"][0]
        self.location = data["location"]["name"]
        self.selector = {"repositoryLocationName": self.location, "repositoryName": data["name"]}

    def log_tail(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{tail(log)}" for log in self.logs)

    def wait(self, check, what: str, timeout: float = TIMEOUT):
        try:
            return wait_for(check, timeout, what, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def add_partition(self, key: str) -> None:
        added = graphql(self.port, ADD_PARTITION, {"selector": self.selector, "key": key})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added

    def launch(self, key: str | None, assets: list[str], checks: list[str] = (), path: Path | None = None) -> str:
        """Launch the implicit asset job as the UI's Materialize / Execute buttons do; the run id."""
        selector = {
            **self.selector,
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [name]} for name in assets],
            "assetCheckSelection": [{"assetKey": {"path": ["import_result"]}, "name": name} for name in checks],
        }
        params = {
            "selector": selector,
            "runConfigData": {"ops": {"archive": {"config": {"path": str(path)}}}} if path else {},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}] if key else []},
            "mode": "default",
        }
        launched = graphql(self.port, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def finished(self, run_id: str) -> dict:
        def done():
            run = graphql(self.port, RUN, {"id": run_id})["runOrError"]
            return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

        return self.wait(done, f"run {run_id} to finish")

    def check_results(self, run_id: str) -> dict[str, bool]:
        with dg.DagsterInstance.from_config(str(self.root / "home")) as instance:
            records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        return {
            r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data.passed for r in records
        }

    def materialized(self, run_id: str) -> list[str]:
        with dg.DagsterInstance.from_config(str(self.root / "home")) as instance:
            records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return [r.dagster_event.asset_key.to_user_string() for r in records]


@contextlib.contextmanager
def events_database(kind: str, root: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{root / 'events.db'}"
        return
    with throwaway_database("ep_ui") as name:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        get_engine.cache_clear()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp(f"ui_{request.param}")
    for folder in ("home", "drop", "archives"):
        (root / folder).mkdir()
    shutil.copy(REPO / "dagster.yaml", root / "home" / "dagster.yaml")
    # The SQLite instance storage is created here, once: the webserver and the daemon starting
    # together would both try (two Alembic heads).
    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    port = free_port()
    with events_database(request.param, root) as url, smtp_server() as (mailbox, smtp_port):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "AWS_"))}
        env.update(
            DAGSTER_HOME=str(root / "home"),
            EVENT_PIPELINE_DATABASE_URL=url,
            EVENT_PIPELINE_DATA_DIR=str(root / "data"),
            EVENT_PIPELINE_DROP_DIR=str(root / "drop"),
            EVENT_PIPELINE_SENSOR_INTERVAL="1",
            EVENT_PIPELINE_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
            EVENT_PIPELINE_NOTIFY_TO="ops@example.org",
            EVENT_PIPELINE_UI_URL=f"http://127.0.0.1:{port}",
            # Where runs may read archives from (the launchpad's path), once archive roots exist.
            EVENT_PIPELINE_ARCHIVE_ROOTS=str(root / "archives"),
        )
        workspace = str(REPO / "workspace.yaml")
        logs = [root / "webserver.log", root / "daemon.log"]
        webserver = [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]
        daemon = [str(BIN / "dagster-daemon"), "run", "-w", workspace]
        with process(webserver, env, logs[0], cwd=root), process(daemon, env, logs[1], cwd=root):

            def loaded():
                nodes = graphql(port, REPOS, timeout=10)["repositoriesOrError"].get("nodes")
                return bool(nodes)

            try:
                wait_for(loaded, 90, "the webserver to load the code location", interval=1)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{tail(logs[0])}") from None
            yield Stack(root, url, port, mailbox, env, logs)


def test_code_location_is_named_as_pyproject_says(stack):
    assert stack.location == "event_pipeline"


def test_materialize_all_is_an_import_with_its_row_and_mail(stack):
    path = stack.root / "archives" / "ui-all.zip"
    files = small_archive(path, "UI Conf")
    stack.add_partition("ui-all")
    run_id = stack.launch("ui-all", IMPORT_ASSETS, CHECKS, path=path)
    run = stack.finished(run_id)
    assert run["status"] == "SUCCESS", stack.log_tail()
    messages = [e.get("message") or "" for e in run["eventConnection"]["events"]]
    assert any("in process" in m for m in messages), "the asset job did not use the in-process executor"
    assert scalar(stack.url, "select state from import_jobs where run_id = :r", r=run_id) == "SUCCESS"
    event_id = scalar(stack.url, "select id from events where import_key = 'ui-all'")
    assert scalar(stack.url, "select name from events where id = :e", e=event_id) == "UI Conf"
    stored = scalar(stack.url, "select count(*) from sessions where event_id = :e", e=event_id)
    assert stored == len(files["sessions"])
    assert stack.check_results(run_id) == {name: True for name in CHECKS}

    mail = stack.wait(lambda: stack.mailbox.find("Import of event UI Conf complete"), "the success mail")
    body = mail.get_content()
    assert f"View the run: http://127.0.0.1:{stack.port}/runs/{run_id}" in body
    assert "View the event" not in body  # EVENT_PIPELINE_BASE_URL is unset: no link to nothing


def test_one_model_alone_is_refused_and_records_nothing(stack):
    path = stack.root / "archives" / "ui-part.zip"
    small_archive(path, "Part Conf")
    stack.add_partition("ui-part")
    run_id = stack.launch("ui-part", ["sessions"])
    run = stack.finished(run_id)
    assert run["status"] == "FAILURE"
    errors = " ".join((e.get("error") or {}).get("message", "") for e in run["eventConnection"]["events"])
    assert "sessions cannot be materialized without the rest of the import" in errors
    assert stack.materialized(run_id) == []
    assert scalar(stack.url, "select count(*) from import_jobs where run_id = :r", r=run_id) == 0
    assert scalar(stack.url, "select count(*) from events where import_key = 'ui-part'") == 0


def test_checks_executed_alone_read_the_partition_from_the_database(stack):
    path = stack.root / "archives" / "ui-check.zip"
    files = small_archive(path, "Check Conf")
    stack.add_partition("ui-check")
    assert stack.finished(stack.launch("ui-check", IMPORT_ASSETS, path=path))["status"] == "SUCCESS"

    # "Execute" on each check, for the partition and with none (every imported archive).
    for key in ("ui-check", None):
        run_id = stack.launch(key, [], CHECKS)
        assert stack.finished(run_id)["status"] == "SUCCESS", stack.log_tail()
        assert stack.check_results(run_id) == {name: True for name in CHECKS}

    # The checks look at the data: a sponsor removed behind the importer's back is a count mismatch.
    event_id = scalar(stack.url, "select id from events where import_key = 'ui-check'")
    with get_engine(stack.url).begin() as conn:
        gone = conn.execute(sa.text("delete from sponsors where event_id = :e"), {"e": event_id}).rowcount
    assert gone == len(files["sponsors"])
    run_id = stack.launch("ui-check", [], ["row_counts_match_archive"])
    stack.finished(run_id)
    assert stack.check_results(run_id) == {"row_counts_match_archive": False}


def test_cli_import_is_mailed_once(stack):
    path = stack.root / "archives" / "cli-key.zip"
    small_archive(path, "CLI Conf")
    done = subprocess.run(
        [str(BIN / "event-pipeline"), "import", str(path)],
        env=stack.env,
        cwd=stack.root,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stack.wait(lambda: stack.mailbox.find("Import of event CLI Conf complete"), "the CLI import's mail")
    # A later import's mail arrives after it: by then the sensor has passed the CLI run without a second mail.
    later = stack.root / "archives" / "cli-later.zip"
    small_archive(later, "Later Conf")
    stack.add_partition("cli-later")
    stack.launch("cli-later", IMPORT_ASSETS, path=later)
    stack.wait(lambda: stack.mailbox.find("Import of event Later Conf complete"), "the later import's mail")
    assert stack.mailbox.subjects().count("Import of event CLI Conf complete") == 1


def test_schedule_skips_an_archive_that_already_failed_until_its_bytes_change(stack):
    path = stack.root / "archives" / "broken-key.zip"
    broken_archive(path, "1")
    done = subprocess.run(
        [str(BIN / "event-pipeline"), "import", str(path)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 1, done.stdout
    stack.wait(lambda: stack.mailbox.find("Import of event broken-key failed"), "the failure mail")
    selector = {**stack.selector, "scheduleName": "reimport_schedule"}

    def planned() -> set[str]:
        tick = graphql(stack.port, DRY_RUN, {"selector": selector, "timestamp": time.time()})["scheduleDryRun"]
        assert tick["__typename"] == "DryRunInstigationTick", tick
        result = tick["evaluationResult"]
        assert result["error"] is None, result["error"]
        return {t["value"] for r in result["runRequests"] or [] for t in r["tags"] if t["key"] == "dagster/partition"}

    assert "broken-key" not in planned()
    broken_archive(path, "2")  # new bytes, still broken: worth one more try
    assert "broken-key" in planned()
