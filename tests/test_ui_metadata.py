"""What the Dagster UI shows, read from the real webserver's GraphQL API, as the UI reads it.

One stack per database (webserver and daemon on a throwaway Dagster home): the
archive is imported through the ``import_file`` job, launched as the launchpad
does with only a file path; then the asset graph, the definition metadata
(kinds, owners, tags, column schema, table name) and the materializations
(warnings and rows as markdown tables, row count, the import_jobs row) are read
back and compared with the archive's JSON and the database.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from collections import Counter

import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa
from browser import page as browser_page
from conftest import REFERENCE_ORDER, REPO, rows, sample, scalar
from processes import BIN, free_port, graphql, process, tail, wait_for

from event_pipeline.db import get_engine
from event_pipeline.model.catalog import BY_NAME

KEY = "OTS16"
CHAIN = ["archive", *REFERENCE_ORDER, "media", "import_result"]

REPO_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } pipelines { name } } } } }
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
RUNS = """
query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results { runId jobName status } } } }
"""
DEFAULT_CONFIG = """
query($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) { ... on RunConfigSchema { rootDefaultYaml } }
}
"""
ASSET = """
query($key: AssetKeyInput!, $partition: String!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      description kinds
      owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
      tags { key value }
      dependencyKeys { path }
      metadataEntries {
        label __typename
        ... on TextMetadataEntry { text }
        ... on TableSchemaMetadataEntry { schema { columns { name type constraints { nullable } } } }
      }
      assetMaterializations(partitions: [$partition], limit: 1) {
        partition
        metadataEntries {
          label __typename
          ... on MarkdownMetadataEntry { mdStr }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""


def archive_json(name: str) -> list | dict:
    with zipfile.ZipFile(sample(KEY)) as archive:
        return json.loads(archive.read(name))


def markdown_rows(md: str) -> list[list[str]]:
    """The body rows of a markdown table (header and rule left out), cells stripped."""
    lines = [line for line in md.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    """Webserver and daemon on a fresh Dagster home, importing into a fresh database of each kind."""
    tmp = tmp_path_factory.mktemp(f"ui_{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'events.db'}"
    else:
        base = request.getfixturevalue("pg_database")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{base}?options=-csearch_path%3D{schema}"
    home = tmp / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # its SQLite tables, before two processes race
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    data = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "AWS_"))}
    env.update(
        DAGSTER_HOME=str(home),
        EVENT_PIPELINE_DATABASE_URL=url,
        EVENT_PIPELINE_DATA_DIR=str(data),
        EVENT_PIPELINE_DROP_DIR=str(tmp / "drop"),
    )
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    web_log, daemon_log = tmp / "webserver.log", tmp / "daemon.log"
    webserver = [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", workspace]
    with process(webserver, env, web_log, cwd=tmp), process(daemon, env, daemon_log, cwd=tmp):

        def logs() -> str:
            return f"--- webserver ---\n{tail(web_log)}\n--- daemon ---\n{tail(daemon_log)}"

        def loaded():
            nodes = graphql(port, REPO_QUERY, timeout=10)["repositoriesOrError"].get("nodes")
            return nodes[0] if nodes else None

        try:
            repo = wait_for(loaded, 90, "the webserver to load the code location", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"]}
        yield {"port": port, "url": url, "data": data, "selector": selector, "logs": logs, "repo": repo}
    get_engine.cache_clear()


def launch(stack, job: str, run_config: dict, assets: list[str] | None = None, partition: str | None = None) -> str:
    """Launch ``job`` as the UI does (``assets``: the asset job's selection; ``partition``: its tag); the run id."""
    selector = {**stack["selector"], "pipelineName": job}
    if assets:
        selector["assetSelection"] = [{"path": [name]} for name in assets]
    params = {"selector": selector, "runConfigData": run_config, "mode": "default"}
    if partition:
        params["executionMetadata"] = {"tags": [{"key": "dagster/partition", "value": partition}]}
    launched = graphql(stack["port"], LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def finished_runs(stack, tags: dict[str, str] | None = None, run_id: str | None = None) -> list[dict]:
    """The runs with ``tags`` (or the run ``run_id``), once all of them have finished; else []."""
    filter_ = {"runIds": [run_id]} if run_id else {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
    runs = graphql(stack["port"], RUNS, {"filter": filter_})["runsOrError"]["results"]
    return runs if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs) else []


@pytest.fixture(scope="module")
def imported(stack):
    """OTS16 imported by launching ``import_file`` with its path, as the launchpad does; returns the runs."""
    uploads = stack["data"] / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / f"{KEY}.zip"
    shutil.copy(sample(KEY), path)
    run_id = launch(stack, "import_file", {"ops": {"import_file_op": {"config": {"path": str(path)}}}})
    try:
        [parent] = wait_for(lambda: finished_runs(stack, run_id=run_id) or None, 120, "import_file")
    except AssertionError as exc:
        status = graphql(stack["port"], RUNS, {"filter": {"runIds": [run_id]}})
        raise AssertionError(f"{exc}: {status}\n{stack['logs']()}") from None
    child = finished_runs(stack, {"event_pipeline/import_file_run": run_id})
    return {"parent": parent, "child": child}


def test_import_file_takes_only_a_path_and_adds_the_partition(stack, imported):
    assert "import_file" in {job["name"] for job in stack["repo"]["pipelines"]}
    default = graphql(
        stack["port"], DEFAULT_CONFIG, {"selector": {**stack["selector"], "pipelineName": "import_file"}}
    )["runConfigSchemaOrError"]["rootDefaultYaml"]
    assert "path: <data dir>/uploads/MyEvent2025.zip" in default  # the launch form starts filled in
    assert imported["parent"]["status"] == "SUCCESS", stack["logs"]()
    [child] = imported["child"]
    assert child["jobName"] == "import_archive" and child["status"] == "SUCCESS"
    event = archive_json("event")
    assert scalar(stack["url"], "select name from events") == event["name"]
    assert scalar(stack["url"], "select count(*) from sessions") == len(archive_json("sessions"))
    assert scalar(stack["url"], "select state from import_jobs where run_id = :r", r=child["runId"]) == "SUCCESS"


def test_import_file_refuses_a_path_outside_the_archive_roots(stack, imported):
    run_id = launch(stack, "import_file", {"ops": {"import_file_op": {"config": {"path": str(sample("OTS16"))}}}})
    [run] = wait_for(lambda: finished_runs(stack, run_id=run_id) or None, 60, "the refused run")
    assert run["status"] == "FAILURE"
    assert finished_runs(stack, {"event_pipeline/import_file_run": run_id}) == []  # no import was started
    assert scalar(stack["url"], "select count(*) from import_jobs") == 1


def asset(stack, name: str) -> dict:
    return graphql(stack["port"], ASSET, {"key": {"path": [name]}, "partition": KEY})["assetNodeOrError"]


def test_the_graph_is_one_chain_in_import_order(stack, imported):
    for before, after in zip(CHAIN, CHAIN[1:], strict=False):
        assert [d["path"] for d in asset(stack, after)["dependencyKeys"]] == [[before]], after
    assert asset(stack, "archive")["dependencyKeys"] == []


def test_model_assets_show_kinds_owners_schema_warnings_and_rows(stack, imported):
    dialect = "sqlite" if stack["url"].startswith("sqlite") else "postgres"
    node = asset(stack, "sessions")
    assert set(node["kinds"]) == {"python", dialect}
    assert node["owners"] == [{"team": "event-pipeline"}]
    tags = {t["key"]: t["value"] for t in node["tags"] if not t["key"].startswith("dagster/kind/")}
    assert tags == {"domain": "events", "source": "open-event"}
    assert "talks" in node["description"] and "session_speakers" in node["description"]
    definition = {e["label"]: e for e in node["metadataEntries"]}
    assert definition["dagster/table_name"]["text"] == "sessions"
    columns = [c["name"] for c in definition["dagster/column_schema"]["schema"]["columns"]]
    stored = [c["name"] for c in sa.inspect(get_engine(stack["url"])).get_columns("sessions")]
    assert sorted(columns) == sorted(stored)  # the schema shown is the table's, column for column

    [materialization] = node["assetMaterializations"]
    assert materialization["partition"] == KEY
    meta = {e["label"]: e for e in materialization["metadataEntries"]}
    assert "path" not in meta  # the IO manager's pickle path is no business of the UI
    sessions = archive_json("sessions")
    assert meta["dagster/row_count"]["intValue"] == len(sessions)
    preview = markdown_rows(meta["rows_written"]["mdStr"])
    assert len(preview) == 20 and "20 of 82 shown." in meta["rows_written"]["mdStr"]
    titles = {s["id"]: s["title"] for s in sessions}
    for row in preview:  # id, source_id, title, ...: each row is an archive session with its title
        assert titles[int(row[1])].strip()[:40] in row[2].replace("\\|", "|")
    # The warnings table lists the sessions' warnings that import_jobs keeps, in order.
    [stored_warnings] = rows(stack["url"], "select warnings from import_jobs")[0]
    stored_warnings = json.loads(stored_warnings) if isinstance(stored_warnings, str) else stored_warnings
    mine = [w for w in stored_warnings if w["file"] in BY_NAME["sessions"].files]
    assert meta["warnings"]["intValue"] == len(mine) > 0
    table = markdown_rows(meta["warnings_table"]["mdStr"])
    assert [r[:3] for r in table] == [[w["file"], w["record_id"] or "", w["field"] or ""] for w in mine[:20]]
    assert {int(r[1]) for r in table} <= set(titles)  # record ids of the archive's sessions


def test_import_result_shows_its_import_jobs_row(stack, imported):
    node = asset(stack, "import_result")
    [materialization] = node["assetMaterializations"]
    meta = {e["label"]: e for e in materialization["metadataEntries"]}
    job = dict(markdown_rows(meta["import_jobs"]["mdStr"]))
    [child] = imported["child"]
    assert job["run_id"] == child["runId"] and job["state"] == "SUCCESS" and job["key"] == KEY
    assert job["event_id"] == str(scalar(stack["url"], "select id from events"))
    assert "path" not in meta


# --- in a real browser -----------------------------------------------------------------------

SCREENSHOTS = REPO / "data" / "screenshots"  # CI keeps data/ as artifacts; docs/images has the README's copies


def dialog_rows(text: str, title: str) -> list[list[str]]:
    """The rows of the table under the heading ``title (n)`` in a markdown dialog's text (header left out)."""
    lines = text.splitlines()
    [start] = [i for i, line in enumerate(lines) if line.startswith(f"{title} (")]
    count = int(lines[start].rsplit("(", 1)[1].rstrip(")"))
    return [line.split("\t") for line in lines[start + 2 : start + 2 + count]]


def show_markdown(page, label: str, content: str = "table") -> str:
    """Open the "[Show Markdown]" of the metadata row ``label``; once the dialog shows ``content`` (a CSS
    selector: the markdown renders after the dialog opens), return the dialog's text."""
    page.get_by_role("row").filter(has_text=label).get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.locator(content).first.wait_for()
    return dialog.inner_text()


def test_browser_shows_the_chain_the_warnings_and_the_schedule_report(stack, imported):
    """Chromium on the webserver, as a user clicks: the import graph, a model's warnings, the report."""
    run_id = launch(stack, "__ASSET_JOB", {}, assets=["schedule_report"], partition=KEY)  # its "Materialize"
    [report_run] = wait_for(lambda: finished_runs(stack, run_id=run_id) or None, 120, "the report")
    assert report_run["status"] == "SUCCESS", stack["logs"]()

    db = "sqlite" if stack["url"].startswith("sqlite") else "postgresql"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{stack['port']}"
    location = f"{stack['repo']['name']}@{stack['selector']['repositoryLocationName']}"
    with browser_page(scale=2) as page:
        # The asset group's graph: the chain, left to right in the reference import order, on one line.
        page.goto(f"{base}/locations/{location}/asset-groups/event_import")
        page.get_by_role("button", name="Skip").click()  # Dagster's newsletter prompt on a fresh browser
        labels = [page.get_by_text(name, exact=True) for name in CHAIN]
        for label in labels:
            label.wait_for()
        boxes = [label.bounding_box() for label in labels]
        assert [round(b["y"]) for b in boxes] == [round(boxes[0]["y"])] * len(CHAIN)
        assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
        left, top = boxes[0]["x"] - 60, boxes[0]["y"] - 60  # the chain's strip, its nodes' frames and edges
        clip = {"x": left, "y": top, "width": boxes[-1]["x"] + boxes[-1]["width"] + 130 - left, "height": 130}
        page.screenshot(path=SCREENSHOTS / f"{db}-graph.png", clip=clip)

    with browser_page() as page:
        # A model's page, its materialization's warnings: those import_jobs keeps for sessions, in order.
        page.goto(f"{base}/assets/sessions?view=events&partition={KEY}")
        text = show_markdown(page, "warnings_table")
        [stored] = rows(stack["url"], "select warnings from import_jobs")[0]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        mine = [w for w in stored if w["file"] in BY_NAME["sessions"].files][:20]
        shown = [line.split("\t") for line in text.splitlines() if line.count("\t") == 3][1:]  # header left out
        assert shown == [[w["file"], w["record_id"] or "", w["field"] or "", w["message"]] for w in mine]
        page.screenshot(path=SCREENSHOTS / f"{db}-asset-warnings.png")

        # The schedule report: sessions per room as the archive's sessions and microlocations give them.
        page.goto(f"{base}/assets/schedule_report?view=events&partition={KEY}")
        text = show_markdown(page, "report")
        rooms = {str(m["id"]): m["name"].strip() for m in archive_json("microlocations")}  # HTML drops the end space
        per_room = Counter(rooms[str(s["microlocation"]["id"])] for s in archive_json("sessions"))
        assert {r[0]: int(r[1]) for r in dialog_rows(text, "Sessions per room")} == per_room
        assert archive_json("event")["name"] in text
        page.screenshot(path=SCREENSHOTS / f"{db}-schedule-report.png")
        page.get_by_role("dialog").get_by_role("button", name="Close").click()
        show_markdown(page, "plot", "img[alt='sessions per day']")
        plot = page.get_by_role("dialog").get_by_role("img", name="sessions per day")
        assert plot.evaluate("img => img.complete && img.naturalWidth") > 0  # the PNG decodes
        page.screenshot(path=SCREENSHOTS / f"{db}-schedule-plot.png")

        # The launchpad of import_file: the one config field, pre-filled with an example path to replace.
        page.goto(f"{base}/locations/{location}/jobs/import_file/playground")
        editor = page.locator(".CodeMirror").first
        editor.wait_for()
        page.get_by_text("import_file_op", exact=False).first.wait_for()
        config = editor.inner_text()
        assert "import_file_op" in config and "path:" in config and ".zip" in config, config
        page.screenshot(path=SCREENSHOTS / f"{db}-launchpad.png")
