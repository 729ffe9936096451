"""A failure at any step leaves no trace in the model tables; re-execution works."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import import_archive, rows, sample, scalar

from event_pipeline.assets import ARCHIVES
from event_pipeline.definitions import IMPORT_JOB_NAME, defs, import_run_config
from event_pipeline.importer import planning, publishing

MODEL_TABLES = [
    "events",
    "social_links",
    "custom_forms",
    "microlocations",
    "sponsors",
    "speakers",
    "tracks",
    "session_types",
    "sessions",
    "session_speakers",
]


def _total_rows(url: str) -> dict[str, int]:
    return {t: scalar(url, f"select count(*) from {t}") for t in MODEL_TABLES}


def _fail_after_writing(monkeypatch):
    """Make the last asset fail after every row has been written, before commit."""
    real = publishing.publish

    def publish_then_fail(conn, plans, sha256, rows, before_commit=None):
        real(conn, plans, sha256, rows, before_commit=before_commit)
        assert conn.execute(sa.text("select count(*) from events")).scalar() > 0  # the rows really were written
        raise RuntimeError("injected failure after all writes")

    monkeypatch.setattr(publishing, "publish", publish_then_fail)


def test_failure_in_last_asset_leaves_zero_rows(db_url, monkeypatch):
    _fail_after_writing(monkeypatch)
    code, result = import_archive(sample("FOSSASIASummit2016"), db_url)
    assert code == 1
    assert result["state"] == "FAILURE"
    assert "injected failure" in result["error"]
    assert all(n == 0 for n in _total_rows(db_url).values()), _total_rows(db_url)
    assert rows(db_url, "select state from import_jobs") == [("FAILURE",)]


def test_failed_reimport_keeps_previous_state(db_url, tmp_path, monkeypatch):
    files = kebab_event()
    path = write_zip(tmp_path / "conf.zip", files)
    assert import_archive(path, db_url)[0] == 0
    before = rows(db_url, "select id, source_key, title from sessions order by id")
    files["sessions"][0]["title"] = "changed"
    del files["sessions"][1]
    _fail_after_writing(monkeypatch)
    code, result = import_archive(write_zip(tmp_path / "v2" / "conf.zip", files), db_url)
    assert code == 1
    assert rows(db_url, "select id, source_key, title from sessions order by id") == before
    assert [r[0] for r in rows(db_url, "select state from import_jobs order by id")] == ["SUCCESS", "FAILURE"]


def test_failure_in_a_model_asset_leaves_zero_rows(db_url, monkeypatch):
    real = planning.plan_model

    def fail_on_sessions(engine, spec, *args, **kwargs):
        if spec.name == "sessions":
            raise RuntimeError("injected failure in sessions")
        return real(engine, spec, *args, **kwargs)

    monkeypatch.setattr(planning, "plan_model", fail_on_sessions)
    code, result = import_archive(sample("OTS16"), db_url)
    assert code == 1
    assert "injected failure in sessions" in result["error"]
    assert all(n == 0 for n in _total_rows(db_url).values())


def import_job():
    return defs.resolve_job_def(IMPORT_JOB_NAME)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reexecution_from_failure_completes_the_import(db_url, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    path = str(sample("OTS16"))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(ARCHIVES.name, ["OTS16"])
        _fail_after_writing(monkeypatch)
        run_config = {"ops": {"archive": {"config": {"path": path, "force": False}}}}
        with dg.execute_job(
            dg.reconstructable(import_job), instance, run_config=run_config, tags={"dagster/partition": "OTS16"}
        ) as first:
            assert not first.success
        assert scalar(db_url, "select count(*) from sessions") == 0
        monkeypatch.undo()
        monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
        with dg.execute_job(
            dg.reconstructable(import_job),
            instance,
            tags={"dagster/partition": "OTS16"},  # as the UI does: the parent run's tags
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        ) as second:
            assert second.success
            steps = {e.step_key for e in second.all_events if e.event_type_value == "STEP_SUCCESS"}
            checks = {f"import_result_{c}" for c in ("references_stay_in_event", "row_counts_match_archive")}
            assert steps == {"import_result", *checks}  # only the failed step ran again, and its checks
    assert scalar(db_url, "select count(*) from sessions") == 82
    assert scalar(db_url, "select count(*) from session_speakers") == 103
    assert [r[0] for r in rows(db_url, "select state from import_jobs order by id")] == ["FAILURE", "SUCCESS"]


def test_the_failure_hook_closes_the_row_of_any_failed_step(db_url, monkeypatch, tmp_path):
    """A step that fails outside its asset's body (its output cannot be stored: disk full) still closes the
    run's import_jobs row as FAILURE with the error, by the job's failure hook alone (no CLI to settle it)."""
    import errno

    from event_pipeline.resources import io_manager

    original = io_manager._RunCachedIOManager.handle_output

    def disk_full_on_sessions(self, context, obj):
        if context.asset_key.to_user_string() == "sessions":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, context, obj)

    monkeypatch.setattr(io_manager._RunCachedIOManager, "handle_output", disk_full_on_sessions)
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    path = write_zip(tmp_path / "conf.zip", kebab_event())
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(ARCHIVES.name, ["conf"])
        outcome = import_job().execute_in_process(
            instance=instance,
            partition_key="conf",
            run_config=import_run_config(str(path)),
            raise_on_error=False,
        )
    assert not outcome.success
    [job] = rows(db_url, "select key, run_id, state, error from import_jobs")
    assert (job.key, job.run_id, job.state) == ("conf", outcome.run_id, "FAILURE")
    assert "No space left on device" in job.error
    assert all(n == 0 for n in _total_rows(db_url).values())
