"""Archive roots: a run reads archives only from under EVENT_PIPELINE_ARCHIVE_ROOTS, whoever launched it;
the command line's own in-process job is the one exception."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from archives import kebab_event, write_zip
from conftest import import_archive, scalar

from event_pipeline import bulk, settings
from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.intake import roots
from event_pipeline.sensors.reimport import reimport_plan


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A drop folder and an upload store as the defaults name them, and a folder outside both."""
    monkeypatch.delenv("EVENT_PIPELINE_ARCHIVE_ROOTS")
    monkeypatch.delenv("EVENT_PIPELINE_DROP_URL", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_UPLOAD_DIR", str(tmp_path / "uploads"))
    outside = write_zip(tmp_path / "elsewhere" / "conf.zip", kebab_event())
    dropped = write_zip(tmp_path / "drop" / "conf.zip", kebab_event())
    uploaded = write_zip(tmp_path / "uploads" / "abc.zip", kebab_event())
    return outside, dropped, uploaded


def test_default_roots_are_the_drop_folder_the_upload_store_and_the_example(layout, tmp_path):
    outside, dropped, uploaded = layout
    assert roots.refusal(str(dropped)) is None
    assert roots.refusal(str(uploaded)) is None
    assert roots.refusal(str(settings.example_archive())) is None
    refused = roots.refusal(str(outside))
    assert refused is not None and refused.startswith(f"archive {outside} is outside the archive roots (")
    assert "EVENT_PIPELINE_ARCHIVE_ROOTS" in refused
    # Climbing out of a root, by '..' or by a symbolic link inside it, is outside.
    assert roots.refusal(str(tmp_path / "drop" / ".." / "elsewhere" / "conf.zip")) is not None
    os.symlink(outside, tmp_path / "drop" / "link.zip")
    assert roots.refusal(str(tmp_path / "drop" / "link.zip")) is not None
    assert roots.refusal("/etc/passwd") is not None
    assert roots.refusal("s3://bucket/x.zip") is not None  # no S3 drop prefix configured
    with roots.unrestricted():
        assert roots.refusal(str(outside)) is None
    assert roots.refusal(str(outside)) is not None


def test_configured_roots_replace_the_defaults(layout, monkeypatch, tmp_path):
    outside, dropped, _ = layout
    monkeypatch.setenv("EVENT_PIPELINE_ARCHIVE_ROOTS", f"{tmp_path / 'elsewhere'}, s3://exports/open-event")
    assert roots.refusal(str(outside)) is None
    assert roots.refusal(str(dropped)) is not None
    assert roots.refusal("s3://exports/open-event/a.zip") is None
    assert roots.refusal("s3://exports/open-event-2/a.zip") is not None  # a sibling prefix is not under it
    assert roots.refusal("s3://exports/open-event/../x.zip") is not None
    assert roots.refusal("s3://other/a.zip") is not None


def test_a_launched_run_cannot_read_outside_the_roots_but_the_cli_can(db_url, layout, monkeypatch):
    outside, _, _ = layout
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    with dg.DagsterInstance.get() as instance:  # as the launchpad does: a partition and a path
        instance.add_dynamic_partitions("archives", ["conf"])
        outcome = defs.resolve_job_def(IMPORT_JOB_NAME).execute_in_process(
            instance=instance,
            partition_key="conf",
            run_config={"ops": {"archive": {"config": {"path": str(outside)}}}},
            raise_on_error=False,
        )
    assert not outcome.success
    [failure] = [e for e in outcome.all_events if e.is_step_failure]
    assert failure.step_key == "archive"
    assert f"archive {outside} is outside the archive roots" in failure.step_failure_data.user_failure_data.description
    row = scalar(db_url, "select state || ' ' || error from import_jobs where key = 'conf'")
    assert row.startswith(f"FAILURE path: archive {outside} is outside the archive roots")
    # The refused path is not recorded as the key's archive, so a re-import without a path does not reuse it.
    assert scalar(db_url, "select count(*) from import_jobs where archive_path is not null") == 0
    assert scalar(db_url, "select count(*) from events") == 0

    code, result = import_archive(outside, db_url)  # whoever runs the command may read the file anyway
    assert code == 0, result
    assert scalar(db_url, "select name from events") == "Test Conf"


def test_bulk_refuses_files_and_folders_outside_the_roots(db_url, layout, tmp_path):
    outside, _, _ = layout
    with pytest.raises(dg.Failure) as raised:
        bulk.import_one_archive(get_engine(db_url), "conf", str(outside), "run/0")
    assert raised.value.description.startswith(f"path: archive {outside} is outside the archive roots")
    skipped: list[tuple[str, str]] = []
    assert bulk.expand_paths([str(tmp_path / "elsewhere")], skipped) == []  # not even listed
    assert [where for where, _ in skipped] == [str(tmp_path / "elsewhere")]
    assert scalar(db_url, "select count(*) from events") == 0


def test_the_nightly_reimport_skips_archives_outside_the_roots(layout):
    outside, dropped, uploaded = layout  # e.g. a file last imported with the command line
    todo, skipped = reimport_plan({"a": str(outside), "b": str(dropped), "c": str(uploaded)}, ["a", "b", "c"])
    assert todo == {"b": str(dropped), "c": str(uploaded)} and skipped == ["a"]
