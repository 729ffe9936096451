"""The S3 drop prefix, against a real S3 HTTP endpoint: a moto server on loopback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from conftest import BROKEN_SAMPLE, sample, scalar
from processes import free_port

from event_pipeline import settings
from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.intake import drop, s3
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource
from event_pipeline.sensors import drop_folder_sensor, reimport_schedule

BUCKET = "exports"
PREFIX = f"s3://{BUCKET}/open-event"


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(moto_endpoint, monkeypatch):
    """A fresh bucket, with boto3 pointed at the server the standard way (AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_DROP_URL", PREFIX)
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def upload(client, source: Path, name: str) -> None:
    client.upload_file(str(source), BUCKET, f"open-event/{name}")


def tick(instance, cursor=None):
    return drop_folder_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_s3_prefix_drop_import_change_and_reimport(bucket, db_url, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    upload(bucket, sample("OTS16"), "OTS16.zip")
    upload(bucket, sample("OTS16"), "notes.txt")
    upload(bucket, sample("OTS16"), "nested/deeper.zip")  # not directly under the prefix
    with dg.DagsterInstance.ephemeral() as instance, dg.instance_for_test() as stored:
        first = tick(instance)
        [request] = first.run_requests  # an S3 object is complete once listed: no waiting tick
        etag = bucket.head_object(Bucket=BUCKET, Key="open-event/OTS16.zip")["ETag"].strip('"')
        assert request.partition_key == "OTS16" and etag in request.run_key
        path = request.run_config["ops"]["archive"]["config"]["path"]
        assert path == f"{PREFIX}/OTS16.zip"
        assert not tick(instance, first.cursor).run_requests

        instance.add_dynamic_partitions("archives", ["OTS16"])
        job = defs.resolve_job_def(IMPORT_JOB_NAME)
        result = job.execute_in_process(
            instance=instance, partition_key="OTS16", run_config=request.run_config, raise_on_error=False
        )
        assert result.success
        assert scalar(db_url, "select name from events") == "Open Tech Summit 2016"
        # The run downloaded the object to the mirror, which maps back to its source.
        last = import_log.last_archive_path(get_engine(db_url), "OTS16")
        assert Path(last).is_relative_to(settings.data_dir() / "s3") and s3.source_for(last) == path

        # A new export under the same name: a new ETag, a new request.
        upload(bucket, sample("FOSSASIASummit2014"), "OTS16.zip")
        [changed] = tick(instance, first.cursor).run_requests
        assert changed.run_key != request.run_key

        # The schedule re-imports from S3 while the object exists, and skips it once gone.
        stored.add_dynamic_partitions("archives", ["OTS16"])  # a schedule needs an instance on disk
        resources = {"database": DatabaseResource(url=db_url)}
        when = dt.datetime(2030, 1, 1, 3, tzinfo=dt.UTC)
        with dg.build_schedule_context(instance=stored, scheduled_execution_time=when, resources=resources) as context:
            [again] = reimport_schedule(context)
        assert again.run_config["ops"]["archive"]["config"]["path"] == path
        rerun = job.execute_in_process(
            instance=instance, partition_key="OTS16", run_config=again.run_config, raise_on_error=False
        )
        assert rerun.success  # the changed object was fetched afresh and imported in place
        assert scalar(db_url, "select name from events") == "FOSSASIA Summit 2014"
        assert scalar(db_url, "select count(*) from events") == 1
        bucket.delete_object(Bucket=BUCKET, Key="open-event/OTS16.zip")
        with dg.build_schedule_context(instance=stored, scheduled_execution_time=when, resources=resources) as context:
            skipped = reimport_schedule(context)
        assert isinstance(skipped, dg.SkipReason)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_missing_or_broken_s3_archive_fails_with_its_errors(bucket, db_url, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    upload(bucket, sample(BROKEN_SAMPLE), "broken.zip")
    job = defs.resolve_job_def(IMPORT_JOB_NAME)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("archives", ["broken", "gone"])
        for key in ("broken", "gone"):
            config = {"ops": {"archive": {"config": {"path": f"{PREFIX}/{key}.zip"}}}}
            assert not job.execute_in_process(
                instance=instance, partition_key=key, run_config=config, raise_on_error=False
            ).success
    engine = get_engine(db_url)
    failures = {row["key"]: row for row in (import_log.get_job(engine, r) for r in _run_ids(db_url))}
    assert failures["broken"]["errors"][0]["file"] == "session_types"
    assert failures["gone"]["errors"][0]["message"].startswith(f"cannot download {PREFIX}/gone.zip")


def _run_ids(url: str) -> list[str]:
    from conftest import rows

    return [r[0] for r in rows(url, "select run_id from import_jobs")]


def test_mirror_refuses_keys_that_leave_it():
    from event_pipeline.problems import ImportFailed

    for url in ("s3://b/../x.zip", "s3://b/a//b.zip", "s3://b/"):
        with pytest.raises(ImportFailed):
            s3.mirror_path(url)
    assert s3.source_for("/somewhere/else.zip") == "/somewhere/else.zip"


def test_s3_listing_ignores_non_archives(bucket):
    upload(bucket, sample("OTS16"), ".partial.zip")
    upload(bucket, sample("OTS16"), "a.ZIP")
    scan = drop.scan_s3(PREFIX, drop.State())
    assert [r.key for r in scan.requests] == ["a"]
    assert [name for name, _ in scan.ignored] == [".partial.zip"]
