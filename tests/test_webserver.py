"""The real ``dagster-webserver`` and ``dagster-daemon``, on PostgreSQL instance storage.

Both start with ``dagster.postgres.yaml`` as their instance config, against a
throwaway PostgreSQL database (created and dropped here). The test talks to
the webserver's GraphQL API as the UI does: lists what the code location
offers, adds a partition and launches an import; the daemon dequeues and runs
it (the queued run coordinator leaves launching to the daemon).
"""

from __future__ import annotations

import os
import shutil

import psycopg
import pytest
import yaml
from conftest import PG_ADMIN, REFERENCE_ORDER, REPO, sample, scalar, throwaway_database
from processes import BIN, free_port, graphql, process, tail, wait_for

WORKSPACE_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        pipelines { name }
        sensors { name sensorState { status } }
        schedules { name cronSchedule scheduleState { status } }
        assetNodes { assetKey { path } }
      }
    }
    ... on PythonError { message }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } }
}
"""

ADD_PARTITION = """
mutation($selector: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: "archives", partitionKey: $key) {
    __typename
    ... on PythonError { message }
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
  }
}
"""

RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }
"""


@pytest.fixture(scope="module")
def dagster_pg():
    """A throwaway PostgreSQL database for Dagster's own storage."""
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN)
    with throwaway_database("ep_dagster") as name:
        yield {
            "DAGSTER_PG_HOST": info.get("host", "127.0.0.1"),
            "DAGSTER_PG_PORT": str(info.get("port", 5432)),
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USERNAME": info.get("user", "postgres"),
            "DAGSTER_PG_PASSWORD": info.get("password", ""),
        }


def test_postgres_variant_differs_from_the_default_only_in_storage():
    default = yaml.safe_load((REPO / "dagster.yaml").read_text())
    variant = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    assert "storage" not in default
    assert {k: v for k, v in variant.items() if k != "storage"} == default
    settings = variant["storage"]["postgres"]["postgres_db"]
    secrets = {k: v for k, v in settings.items() if k != "scheme"}
    assert all(set(value) == {"env"} for value in secrets.values())  # nothing secret in the file
    assert settings["scheme"] == "postgresql+psycopg2"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_ui_lists_the_code_location_and_launches_an_import(db_url, dagster_pg, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "AWS_"))}
    env.update(
        dagster_pg,
        DAGSTER_HOME=str(home),
        EVENT_PIPELINE_DATABASE_URL=db_url,
        EVENT_PIPELINE_DATA_DIR=str(tmp_path / "data"),
        EVENT_PIPELINE_DROP_DIR=str(tmp_path / "drop"),
        EVENT_PIPELINE_SENSOR_INTERVAL="1",
        EVENT_PIPELINE_ARCHIVE_ROOTS=str(sample("OTS16").parent),  # the launch below names a sample by path
    )
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    webserver = [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", workspace]
    with process(webserver, env, web_log, cwd=tmp_path), process(daemon, env, daemon_log, cwd=tmp_path):

        def logs() -> str:
            return f"--- webserver ---\n{tail(web_log)}\n--- daemon ---\n{tail(daemon_log)}"

        def loaded():
            data = graphql(port, WORKSPACE_QUERY, timeout=10)
            nodes = data["repositoriesOrError"].get("nodes")
            return data if nodes and nodes[0]["assetNodes"] else None

        try:
            data = wait_for(loaded, 90, "the webserver to load the code location", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        [repo] = data["repositoriesOrError"]["nodes"]
        assets = {"/".join(node["assetKey"]["path"]) for node in repo["assetNodes"]}
        assert set(REFERENCE_ORDER) <= assets and {"archive", "import_result"} <= assets
        assert "import_archive" in {job["name"] for job in repo["pipelines"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["drop_folder_sensor"] == "RUNNING"
        assert {"import_succeeded_sensor", "import_failed_sensor", "interrupted_imports_sensor"} <= set(sensors)
        [schedule] = repo["schedules"]
        assert schedule["name"] == "reimport_schedule" and schedule["scheduleState"]["status"] == "RUNNING"

        # As the UI does: add the partition, then launch the job for it with the archive's path.
        selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"]}
        added = graphql(port, ADD_PARTITION, {"selector": selector, "key": "ots"})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
        params = {
            "selector": {**selector, "pipelineName": "import_archive"},
            "runConfigData": {"ops": {"archive": {"config": {"path": str(sample("OTS16"))}}}},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "ots"}]},
            "mode": "default",
        }
        launched = graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        def finished():
            run = graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]
            return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

        try:
            run = wait_for(finished, 90, "the launched run to finish", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        assert run["status"] == "SUCCESS", logs()
        assert scalar(db_url, "select name from events") == "Open Tech Summit 2016"
        assert scalar(db_url, "select state from import_jobs where run_id = :r", r=run_id) == "SUCCESS"
        # The daemon ran against PostgreSQL: its heartbeats and the run are in the throwaway database.
        health = graphql(port, WORKSPACE_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        assert {d["daemonType"] for d in health if d["healthy"]} >= {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"}
    with psycopg.connect(f"{PG_ADMIN.rsplit('/', 1)[0]}/{dagster_pg['DAGSTER_PG_DB']}") as conn:
        stored = conn.execute("select count(*) from runs where run_id = %s", (run_id,)).fetchone()[0]
        beats = conn.execute("select count(*) from daemon_heartbeats").fetchone()[0]
    assert stored == 1 and beats >= 3
