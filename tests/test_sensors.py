"""The drop-folder sensor, the re-import schedule and the run-status sensors, on a real instance.

``build_sensor_context`` / ``build_schedule_context`` run the real definitions
against a Dagster instance; the runs are executed in-process with the run
config the sensor asked for.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from conftest import BROKEN_SAMPLE, rows, sample, scalar
from processes import smtp_server

from event_pipeline.assets.common import KEY_TAG
from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.intake import drop
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource
from event_pipeline.sensors import (
    SCHEDULES,
    SENSORS,
    drop_folder_sensor,
    import_canceled_sensor,
    import_failed_sensor,
    import_succeeded_sensor,
    interrupted_imports_sensor,
    reimport_schedule,
    run_status,
)
from event_pipeline.sensors.common import IMPORT_JOB


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:  # in memory: fast, and enough for sensors and runs
        yield inst


@pytest.fixture
def stored_instance():
    """An instance on disk: a schedule's context needs one it can reference."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def drop_dir(tmp_path) -> Path:
    return Path(os.environ["EVENT_PIPELINE_DROP_DIR"])  # set per test by conftest's isolated_home


def tick(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return drop_folder_sensor(context)


def execute(instance, request: dg.RunRequest, url: str) -> dg.ExecuteInProcessResult:
    """Run what the sensor asked for, as the daemon would (the resource reads the URL from the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVENT_PIPELINE_DATABASE_URL", url)
        return _execute(instance, request)


def _execute(instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    if not instance.has_dynamic_partition("archives", request.partition_key):
        instance.add_dynamic_partitions("archives", [request.partition_key])
    return defs.resolve_job_def(IMPORT_JOB_NAME).execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        raise_on_error=False,
    )


def test_definitions_wire_the_automation():
    assert defs.resolve_job_def(IMPORT_JOB).name == IMPORT_JOB_NAME
    sensor = defs.resolve_sensor_def("drop_folder_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 15
    assert {s.name for s in SENSORS} <= {s.name for s in defs.sensors}
    for definition in [*SENSORS, *SCHEDULES]:
        assert definition.default_status.value == "RUNNING", definition.name
    assert reimport_schedule.cron_schedule == "0 3 * * *"
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        "references_stay_in_event",
        "row_counts_match_archive",
        "no_room_double_booking",  # the schedule report's
        "no_speaker_overlaps",
    }


def test_cron_and_interval_come_from_the_environment(monkeypatch):
    from event_pipeline.sensors import drop_folder as drop_module
    from event_pipeline.sensors import reimport as reimport_module

    monkeypatch.setenv("EVENT_PIPELINE_REIMPORT_CRON", "*/10 * * * *")
    monkeypatch.setenv("EVENT_PIPELINE_SENSOR_INTERVAL", "3")
    try:
        assert importlib.reload(reimport_module).reimport_schedule.cron_schedule == "*/10 * * * *"
        assert importlib.reload(drop_module).drop_folder_sensor.minimum_interval_seconds == 3
    finally:
        monkeypatch.undo()
        importlib.reload(reimport_module)
        importlib.reload(drop_module)


def test_drop_folder_is_created_and_a_new_zip_waits_one_tick(instance, drop_dir, tmp_path):
    assert not drop_dir.exists()
    first = tick(instance)
    assert drop_dir.is_dir()  # created if missing
    assert not first.run_requests
    shutil.copy(sample("OTS16"), drop_dir / "OTS16.zip")
    (drop_dir / "notes.txt").write_text("not an archive")
    seen = tick(instance, first.cursor)
    assert not seen.run_requests  # size and mtime must hold still for a tick first
    assert "waiting" in seen.skip_reason.skip_message
    stable = tick(instance, seen.cursor)
    [request] = stable.run_requests
    sha = drop.file_sha256(drop_dir / "OTS16.zip")
    assert request.partition_key == "OTS16"
    assert sha in request.run_key
    assert request.run_config["ops"] == {"archive": {"config": {"path": str(drop_dir / "OTS16.zip"), "force": False}}}
    assert not any(v for k, v in request.run_config.items() if k != "ops")  # no resource config (no database URL)
    assert request.tags[KEY_TAG] == "OTS16"
    [add] = stable.dynamic_partitions_requests
    assert add.partitions_def_name == "archives" and list(add.partition_keys) == ["OTS16"]
    again = tick(instance, stable.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests


def test_non_zip_files_are_logged_once(instance, drop_dir, capfd):
    drop_dir.mkdir()
    (drop_dir / "readme.txt").write_text("x")
    (drop_dir / ".hidden.zip").write_bytes(b"partial upload")
    (drop_dir / "bad...key.zip").write_bytes(b"x")
    result = tick(instance)
    logged = capfd.readouterr().err
    assert "ignoring readme.txt: not a .zip archive" in logged
    assert "ignoring .hidden.zip: a hidden file" in logged
    assert "ignoring bad...key.zip: its name gives no valid key: invalid archive key 'bad...key': it contains '..'" in (
        logged
    )
    result = tick(instance, result.cursor)
    result = tick(instance, result.cursor)
    assert "ignoring" not in capfd.readouterr().err
    assert not result.run_requests


def test_a_file_still_being_written_is_not_picked_up(instance, drop_dir):
    drop_dir.mkdir()
    data = sample("OTS16").read_bytes()
    target = drop_dir / "OTS16.zip"
    target.write_bytes(data[: len(data) // 2])
    cursor = tick(instance).cursor
    for part in (data[: len(data) * 3 // 4], data):
        target.write_bytes(part)  # the copy goes on: size and mtime change between ticks
        result = tick(instance, cursor)
        assert not result.run_requests
        cursor = result.cursor
    [request] = tick(instance, cursor).run_requests
    assert drop.file_sha256(target) in request.run_key


def committed(state: drop.State, scan: drop.Scan) -> list[drop.Request]:
    """What the sensor does between ticks: Dagster commits the cursor, the next tick confirms it."""
    state.confirm(drop.Cursor.load(scan.cursor.dump()))
    return scan.requests


def test_same_bytes_again_are_not_reimported_but_changes_and_reverts_are(drop_dir, tmp_path):
    drop_dir.mkdir()
    state = drop.State()
    target = drop_dir / "conf.zip"

    def settle(source: Path) -> list[drop.Request]:
        shutil.copy(source, target)
        os.utime(target, ns=(time.time_ns(), time.time_ns()))
        committed(state, drop.scan_folder(drop_dir, state))
        return committed(state, drop.scan_folder(drop_dir, state))

    a, b = sample("OTS16"), sample("FOSSASIASummit2014")
    assert [r.generation for r in settle(a)] == [1]
    assert settle(a) == []  # copied again, unchanged
    [changed] = settle(b)
    [reverted] = settle(a)  # A, B, A: the database holds B, so A is imported again
    assert changed.generation == 2 and reverted.generation == 3
    assert len({changed.run_key, reverted.run_key}) == 2
    target.unlink()
    drop.scan_folder(drop_dir, state)
    assert state.files == {} and "conf" in state.sent
    assert settle(a) == []  # deleted and dropped again unchanged


def test_a_tick_that_was_not_committed_is_planned_again(drop_dir):
    """Dagster did not commit the tick (daemon died): the same requests come back, same run keys."""
    drop_dir.mkdir()
    shutil.copy(sample("OTS16"), drop_dir / "a.zip")
    state = drop.State()
    committed(state, drop.scan_folder(drop_dir, state))
    [lost] = drop.scan_folder(drop_dir, state).requests  # its cursor never reaches the next tick
    [again] = committed(state, drop.scan_folder(drop_dir, state))
    assert again.run_key == lost.run_key
    assert drop.scan_folder(drop_dir, state).requests == []


def test_thousands_of_files_are_hashed_once_and_the_cursor_stays_small(instance, drop_dir, monkeypatch):
    drop_dir.mkdir()
    for i in range(2000):
        (drop_dir / f"a{i:04}.zip").write_bytes(b"PK%d" % i)
    hashed = []
    real = drop.file_sha256
    monkeypatch.setattr(drop, "file_sha256", lambda p: hashed.append(p) or real(p))
    first = tick(instance)
    assert not first.run_requests
    second = tick(instance, first.cursor)
    assert len(second.run_requests) == 2000 and len(hashed) == 2000
    started = time.monotonic()
    third = tick(instance, second.cursor)
    assert not third.run_requests and len(hashed) == 2000  # nothing re-hashed
    assert time.monotonic() - started < 5
    # Dagster keeps the cursor with every tick: in steady state it is a few bytes.
    assert len(third.cursor) < 100
    assert drop.state_path(str(drop_dir)).stat().st_size < 400_000


def test_hashing_is_bounded_per_tick(drop_dir):
    drop_dir.mkdir()
    for i in range(5):
        (drop_dir / f"a{i}.zip").write_bytes(b"x%d" % i)
    state = drop.State()
    drop.scan_folder(drop_dir, state)
    clock = iter(range(100)).__next__  # every call is a second later
    first = committed(state, drop.scan_folder(drop_dir, state, budget_seconds=2.5, clock=clock))
    assert 0 < len(first) < 5
    rest = committed(state, drop.scan_folder(drop_dir, state))
    assert len(first) + len(rest) == 5


def test_corrupt_state_or_cursor_starts_over(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    assert drop.State.load(tmp_path / "state.json").files == {}
    assert drop.State.load(tmp_path / "missing.json").sent == {}
    assert drop.Cursor.load(json.dumps({"v": 99})).inflight == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sensor_request_imports_and_the_schedule_reimports(instance, stored_instance, drop_dir, db_url, tmp_path):
    drop_dir.mkdir()
    for name in ("OTS16", BROKEN_SAMPLE):
        shutil.copy(sample(name), drop_dir / f"{name}.zip")
    cursor = tick(instance).cursor
    requests = tick(instance, cursor).run_requests
    assert {r.partition_key for r in requests} == {"OTS16", BROKEN_SAMPLE}
    results = {r.partition_key: execute(instance, r, db_url) for r in requests}
    assert results["OTS16"].success and not results[BROKEN_SAMPLE].success
    checks = {e.check_name: e.passed for e in results["OTS16"].get_asset_check_evaluations()}
    assert checks == {"references_stay_in_event": True, "row_counts_match_archive": True}

    # The schedule, on an instance it can reference (the partitions are the known archives).
    instance = stored_instance
    instance.add_dynamic_partitions("archives", ["OTS16", BROKEN_SAMPLE, "never-imported"])
    resources = {"database": DatabaseResource(url=db_url)}
    when = dt.datetime(2030, 1, 1, 3, tzinfo=dt.UTC)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as context:
        unchanged = reimport_schedule(context)
    # Both archives have the bytes of their last import (one succeeded, one failed): no run for either.
    assert isinstance(unchanged, dg.SkipReason), unchanged
    shutil.copy(sample("FOSSASIASummit2014"), drop_dir / "OTS16.zip")  # new bytes under the same key
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as context:
        planned = reimport_schedule(context)
    assert {r.partition_key: r.run_config["ops"]["archive"]["config"]["path"] for r in planned} == {
        "OTS16": str(drop_dir / "OTS16.zip"),
    }
    # Gone: not re-imported (an unchanged one is a no-op run: see test_reimport).
    (drop_dir / "OTS16.zip").unlink()
    (drop_dir / f"{BROKEN_SAMPLE}.zip").unlink()
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as context:
        skipped = reimport_schedule(context)
    assert isinstance(skipped, dg.SkipReason)
    assert scalar(db_url, "select count(*) from events") == 1


def _status_event(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> dg.DagsterEvent:
    return next(e for e in result.all_events if e.event_type == kind)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_status_sensors_email_success_and_failure(instance, db_url, monkeypatch):
    with smtp_server() as (mailbox, port):
        monkeypatch.setenv("EVENT_PIPELINE_SMTP_URL", f"smtp://127.0.0.1:{port}")
        monkeypatch.setenv("EVENT_PIPELINE_NOTIFY_TO", "ops@example.org, lead@example.org")
        resources = {"database": DatabaseResource(url=db_url)}
        outcomes = {}
        for name in ("OTS16", BROKEN_SAMPLE):
            request = dg.RunRequest(
                partition_key=name, run_config={"ops": {"archive": {"config": {"path": str(sample(name))}}}}
            )
            outcomes[name] = execute(instance, request, db_url)

        ok = outcomes["OTS16"]
        with dg.build_run_status_sensor_context(
            sensor_name="import_succeeded_sensor",
            dagster_event=_status_event(ok, dg.DagsterEventType.RUN_SUCCESS),
            dagster_instance=instance,
            dagster_run=ok.dagster_run,
            resources=resources,
        ) as context:
            import_succeeded_sensor(context)
        bad = outcomes[BROKEN_SAMPLE]
        with dg.build_run_status_sensor_context(
            sensor_name="import_failed_sensor",
            dagster_event=_status_event(bad, dg.DagsterEventType.RUN_FAILURE),
            dagster_instance=instance,
            dagster_run=bad.dagster_run,
            resources=resources,
        ) as context:
            import_failed_sensor(context.for_run_failure())

    assert mailbox.subjects() == [
        "Import of event Open Tech Summit 2016 complete",
        f"Import of event {BROKEN_SAMPLE} failed",
    ]
    done, failed = mailbox.messages
    assert done["To"] == "ops@example.org, lead@example.org"
    body = done.get_content()
    assert "has been imported successfully" in body and "82 sessions" in body
    assert f"View the run: http://127.0.0.1:3000/runs/{ok.run_id}" in body
    errors = rows(db_url, "select errors from import_jobs where key = :k", k=BROKEN_SAMPLE)[0][0]
    errors = json.loads(errors) if isinstance(errors, str) else errors
    text = failed.get_content()
    assert "The following error" in text
    for error in errors:
        assert error["message"] in text  # the whole error list, not just the first


def stored_run(
    instance, *, tags: dict, status=dg.DagsterRunStatus.NOT_STARTED, run_config: dict | None = None
) -> dg.DagsterRun:
    """A run of the import job as run storage holds it (what the daemon's sensors see), made with public API."""
    run = dg.DagsterRun(job_name=IMPORT_JOB, run_id=str(uuid.uuid4()), run_config=run_config or {}, tags=tags)
    return instance.add_run(run.with_status(status))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_canceled_and_killed_runs_end_as_failure(instance, db_url, capfd):
    """A run terminated from the UI, or whose worker died, does not stay RUNNING in import_jobs."""
    engine = get_engine(db_url)
    resources = {"database": DatabaseResource(url=db_url)}
    tags = {KEY_TAG: "k", "dagster/partition": "k"}

    # Terminated: Dagster marks the run CANCELED; the import's own handler never ran.
    canceled = stored_run(instance, tags=tags, status=dg.DagsterRunStatus.STARTED)
    import_log.open_job(engine, key="k", run_id=canceled.run_id, path="/x/k.zip", sha256=None)
    instance.report_run_canceled(canceled)
    event = instance.get_records_for_run(canceled.run_id).records[-1].event_log_entry.dagster_event
    with dg.build_run_status_sensor_context(
        sensor_name="import_canceled_sensor",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(canceled.run_id),
        resources=resources,
    ) as context:
        import_canceled_sensor(context)
    assert import_log.get_job(engine, canceled.run_id)["state"] == "FAILURE"
    assert "Import of event k failed" in capfd.readouterr().err  # no SMTP configured: a log line

    # Killed: the worker's pid is gone; the sweeper fails the run and closes the row.
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = stored_run(instance, tags=tags, status=dg.DagsterRunStatus.STARTED)
    alive = stored_run(instance, tags=tags, status=dg.DagsterRunStatus.STARTED)
    import_log.open_job(engine, key="k", run_id=killed.run_id, path="/x/k.zip", sha256=None)
    import_log.open_job(engine, key="k", run_id=alive.run_id, path="/x/k.zip", sha256=None)  # this process: alive
    with engine.begin() as conn:
        conn.exec_driver_sql("update import_jobs set pid = ? where run_id = ?", (dead.pid, killed.run_id))
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
        result = interrupted_imports_sensor(context)
    assert "1 interrupted" in result.skip_message
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert import_log.get_job(engine, killed.run_id)["error"] == import_log.INTERRUPTED
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert import_log.get_job(engine, alive.run_id)["state"] == "RUNNING"
    assert run_status.sweep_interrupted(instance, engine) == []  # idempotent


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_run_without_a_row_gets_one(instance, db_url):
    """A run that failed before the import began (no row yet) still leaves a FAILURE row."""
    engine = get_engine(db_url)
    run = stored_run(
        instance,
        tags={"dagster/partition": "early"},
        run_config={"ops": {"archive": {"config": {"path": "/drop/early.zip"}}}},
    )
    sent = run_status.on_failure(engine, run, "resource database failed to start", run_status.notify.log)
    job = import_log.get_job(engine, run.run_id)
    assert job["state"] == "FAILURE" and job["archive_path"] == "/drop/early.zip"
    assert sent.subject == "Import of event early failed" and "resource database failed" in sent.body


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_failed_from_outside_after_its_worker_died_reads_interrupted(instance, db_url):
    """The code server reports a dead worker's run as failed "from outside": the row says why."""
    engine = get_engine(db_url)
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = stored_run(instance, tags={"dagster/partition": "k"})
    import_log.open_job(engine, key="k", run_id=run.run_id, path="/x/k.zip", sha256=None)
    with engine.begin() as conn:
        conn.exec_driver_sql("update import_jobs set pid = ? where run_id = ?", (dead.pid, run.run_id))
    outside = "This run has been marked as failed from outside the execution context."
    run_status.on_failure(engine, run, outside, run_status.notify.log)
    assert import_log.get_job(engine, run.run_id)["error"] == import_log.INTERRUPTED


def test_a_bulk_run_mails_each_of_its_imports_once(db_url, monkeypatch):
    """One bulk run holds many imports (rows ``<run id>/<index>``): the run-status sensor mails each,
    closing one the run left RUNNING as FAILURE first."""
    from event_pipeline.bulk import BULK_JOB_NAME
    from event_pipeline.model.migrate import upgrade_schema
    from event_pipeline.sensors.run_status import on_success

    engine = get_engine(db_url)
    upgrade_schema(engine)
    import_log.open_job(engine, key="a", run_id="bulk-1/0", path="/x/a.zip", sha256=None)
    with engine.begin() as conn:
        result = {"event_name": "A Conf", "id": 1, "url": "http://localhost:8080/events/a"}
        diff = {"created": 3, "updated": 0, "deleted": 0, "unchanged": 0}
        import_log.close_job(conn, key="a", run_id="bulk-1/0", state="SUCCESS", result=result, diff=diff)
    import_log.open_job(engine, key="b", run_id="bulk-1/1", path="/x/b.zip", sha256=None)  # left RUNNING
    import_log.open_job(engine, key="c", run_id="other-run/0", path="/x/c.zip", sha256=None)  # another run
    with smtp_server() as (mailbox, port):
        monkeypatch.setenv("EVENT_PIPELINE_SMTP_URL", f"smtp://127.0.0.1:{port}")
        monkeypatch.setenv("EVENT_PIPELINE_NOTIFY_TO", "ops@example.org")
        on_success(engine, dg.DagsterRun(job_name=BULK_JOB_NAME, run_id="bulk-1"), logging.getLogger("test"))
    assert sorted(mailbox.subjects()) == ["Import of event A Conf complete", "Import of event b failed"]
    failed = mailbox.find("Import of event b failed").get_content().splitlines()
    assert "View the run: http://127.0.0.1:3000/runs/bulk-1" in failed
    assert "- the bulk run ended before this archive's import finished" in failed
    assert scalar(db_url, "select state from import_jobs where run_id = 'bulk-1/1'") == "FAILURE"
    assert scalar(db_url, "select state from import_jobs where run_id = 'other-run/0'") == "RUNNING"
