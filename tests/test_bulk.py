"""The bulk job's pieces, in-process: the per-key advisory lock, the per-archive step, the job itself.

The same job on real Celery workers is tests/test_celery.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from archives import kebab_event, write_zip
from conftest import REPO, rows, scalar
from dagster_celery.cli import get_validated_config
from media_archives import check_media_stored, media_event

from event_pipeline import bulk
from event_pipeline.db import get_engine
from event_pipeline.definitions import defs
from event_pipeline.importer import publishing, whole
from event_pipeline.model.catalog import MODELS
from event_pipeline.publish.locks import KeyLockTimeout, holder_pids, key_lock, lock_id


def _archive(path: Path, name: str = "Conf") -> Path:
    files = kebab_event()
    files["event"]["name"] = name
    return write_zip(path, files)


def _key() -> str:
    # Advisory locks are per database, and the tests' schemas share one: keys of our own.
    return f"k-{uuid.uuid4().hex[:8]}"


# --- the lock ------------------------------------------------------------------


def test_lock_id_is_a_stable_64_bit_hash():
    assert lock_id("FOSSASIASummit2016") == lock_id("FOSSASIASummit2016")
    assert lock_id("a") != lock_id("b")
    assert all(-(2**63) <= lock_id(k) < 2**63 for k in ("", "a", "ü" * 100))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_key_lock_excludes_the_same_key_only(db_url):
    engine = get_engine(db_url)
    one, other = _key(), _key()
    with key_lock(engine, one):
        assert len(holder_pids(engine, one)) == 1
        errors = []

        def same_key():
            try:
                with key_lock(engine, one, timeout=0.3):
                    pass
            except KeyLockTimeout as exc:
                errors.append(exc)

        thread = threading.Thread(target=same_key)
        thread.start()
        thread.join(10)
        assert len(errors) == 1 and one in str(errors[0])
        started = time.monotonic()
        with key_lock(engine, other, timeout=5):  # another key: no wait at all
            assert time.monotonic() - started < 1
    assert holder_pids(engine, one) == []
    with key_lock(engine, one, timeout=1):  # released: free again
        pass


def test_key_lock_is_a_no_op_on_sqlite(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'events.db'}")
    with key_lock(engine, "k"), key_lock(engine, "k", timeout=0):  # nested: would deadlock on PostgreSQL
        assert holder_pids(engine, "k") == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_import_waits_while_another_holds_the_key(db_url, tmp_path, monkeypatch):
    engine = get_engine(db_url)
    key = _key()
    path = str(_archive(tmp_path / f"{key}.zip"))
    waited_for: list[list[int]] = []
    real_lock = whole.key_lock
    monkeypatch.setattr(whole, "key_lock", lambda *a, **kw: real_lock(*a, **{**kw, "on_wait": waited_for.append}))
    outcome: dict = {}

    def run():
        outcome.update(bulk.import_one_archive(engine, key, path, "job-1", lock_timeout=30))

    thread = threading.Thread(target=run)
    with key_lock(engine, key):  # another import (any process, any machine) holds the key
        holder = holder_pids(engine, key)
        thread.start()
        time.sleep(1.5)
        assert thread.is_alive()
        assert waited_for == [holder]
        assert scalar(db_url, "select count(*) from import_jobs") == 0  # not even opened
        assert scalar(db_url, "select count(*) from events") == 0
    thread.join(30)
    assert outcome["state"] == "SUCCESS"
    assert rows(db_url, "select key, run_id, state from import_jobs") == [(key, "job-1", "SUCCESS")]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_same_key_never_overlaps_different_keys_run_in_parallel(db_url, tmp_path, monkeypatch):
    """Four imports at once, two per key, each holding its write transaction open for a while."""
    engine = get_engine(db_url)
    real_publish = publishing.publish
    spans: list[tuple[str, float, float]] = []

    def slow_publish(conn, plans, sha256, rows, before_commit=None):
        started = time.monotonic()
        try:  # every attempt counts, also one that fails on a conflict and is retried
            real_publish(conn, plans, sha256, rows, before_commit=before_commit)
            time.sleep(0.6)
        finally:
            spans.append((threading.current_thread().name.split("#")[0], started, time.monotonic()))

    monkeypatch.setattr(publishing, "publish", slow_publish)
    keys = [_key(), _key()]
    work = []
    for key in keys:
        for copy in range(2):
            files = kebab_event()
            files["sessions"][0]["title"] = f"version {copy}"  # different bytes: both really write
            work.append((key, str(write_zip(tmp_path / str(copy) / f"{key}.zip", files)), f"{key}-job-{copy}"))
    threads = [
        threading.Thread(
            target=bulk.import_one_archive, args=(engine, *item), kwargs={"lock_timeout": 60}, name=f"{item[0]}#{i}"
        )
        for i, item in enumerate(work)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(spans) == 4  # with the lock, no attempt ever conflicts: one each

    def overlap(a, b):
        return a[1] < b[2] and b[1] < a[2]

    for key in keys:
        first, second = [s for s in spans if s[0] == key]
        assert not overlap(first, second), "two imports of one key wrote at the same time"
    assert any(overlap(a, b) for a in spans for b in spans if a[0] != b[0]), "different keys were serialised"
    assert scalar(db_url, "select count(*) from events") == 2
    assert scalar(db_url, "select count(*) from import_jobs where state = 'SUCCESS'") == 4
    assert scalar(db_url, "select count(*) from sessions") == 6  # 3 per event, never duplicated


# --- the job, in-process ---------------------------------------------------------


def test_mapping_keys_are_valid_and_unique():
    keys = ["FOSSASIASummit2016", "ots-16", "ots_16", "", "é", "conf", "class", "input", "conf_"]
    assert bulk.mapping_keys(keys) == [
        "FOSSASIASummit2016",
        "ots_16",
        "ots_16_2",
        "archive",
        "_",
        "conf_",  # Dagster refuses its reserved words and Python's keywords as mapping keys
        "class_",
        "input_",
        "conf__2",
    ]


def _run_bulk(config: dict) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(bulk.BULK_JOB_NAME)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance, run_config={"ops": {"find_archives": {"config": config}}}, raise_on_error=False
        )


def test_bulk_job_imports_each_archive_in_its_own_step(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    folder = tmp_path / "drop"
    for i in range(3):
        _archive(folder / f"conf-{i}.zip", f"Conf {i}")
    extra = _archive(tmp_path / "elsewhere" / "extra.zip", "Extra")

    result = _run_bulk({"paths": [str(folder), str(extra)]})
    assert result.success
    steps = sorted(e.step_key for e in result.all_events if e.is_step_success)
    assert steps == sorted(
        ["find_archives", "bulk_summary", *(f"import_one[conf_{i}]" for i in range(3)), "import_one[extra]"]
    )
    assert result.output_for_node("bulk_summary")["archives"] == 4
    assert sorted(r[0] for r in rows(db_url, "select import_key from events")) == [
        "conf-0",
        "conf-1",
        "conf-2",
        "extra",
    ]
    jobs = rows(db_url, "select key, run_id, state from import_jobs order by run_id")
    assert [(k, s) for k, _, s in jobs] == [
        ("conf-0", "SUCCESS"),
        ("conf-1", "SUCCESS"),
        ("conf-2", "SUCCESS"),
        ("extra", "SUCCESS"),
    ]
    assert [r for _, r, _ in jobs] == [f"{result.run_id}/{i}" for i in range(4)]
    with dg.DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions("archives")) == ["conf-0", "conf-1", "conf-2", "extra"]
        _assert_in_the_asset_catalog(instance, result.run_id, ["conf-0", "conf-1", "conf-2", "extra"])

    # No paths: every known key again, each from the file it was last imported from; unchanged bytes are no-ops.
    again = _run_bulk({})
    assert again.success
    summary = again.output_for_node("bulk_summary")
    assert summary["archives"] == 4 and summary["unchanged_archives"] == 4 and summary["created"] == 0
    assert scalar(db_url, "select count(*) from events") == 4


def _assert_in_the_asset_catalog(instance: dg.DagsterInstance, run_id: str, keys: list[str]) -> None:
    """Every asset of the import graph has a materialization of each key's partition from the bulk run,
    with the model's figures: the records of the archive (kebab_event's lists), all created."""
    archive = kebab_event()
    for asset in ["archive", *(spec.name for spec in MODELS), "media", "import_result"]:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys), asset
    for name, source in (("sessions", "sessions"), ("speakers", "speakers"), ("tracks", "tracks")):
        records = instance.fetch_materializations(dg.AssetKey(name), limit=100).records
        assert sorted(r.partition_key for r in records if r.run_id == run_id) == sorted(keys)
        for record in records:
            metadata = record.asset_materialization.metadata
            assert metadata["records"].value == len(archive[source]), name
            assert metadata["dagster/row_count"].value == len(archive[source]), name
            assert (metadata["created"].value, metadata["updated"].value) == (len(archive[source]), 0)


def test_a_bad_archive_fails_its_own_step_only(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    good = _archive(tmp_path / "a" / "good.zip")
    bad = write_zip(tmp_path / "a" / "bad.zip", kebab_event(sessions="[{"))
    missing = tmp_path / "a" / "missing.zip"

    result = _run_bulk({"paths": [str(good), str(bad), str(missing)]})
    assert not result.success
    failed = sorted(e.step_key for e in result.all_events if e.is_step_failure)
    assert failed == ["import_one[bad]", "import_one[missing]"]
    assert "import_one[good]" in {e.step_key for e in result.all_events if e.is_step_success}
    states = dict(rows(db_url, "select key, state from import_jobs"))
    assert states == {"good": "SUCCESS", "bad": "FAILURE", "missing": "FAILURE"}
    with dg.DagsterInstance.get() as instance:  # only what was imported is in the asset catalog
        assert instance.get_materialized_partitions(dg.AssetKey("sessions")) == {"good"}
    assert "sessions: invalid JSON" in scalar(db_url, "select error from import_jobs where key = 'bad'")
    assert "archive not found" in scalar(db_url, "select error from import_jobs where key = 'missing'")
    assert [r[0] for r in rows(db_url, "select import_key from events")] == ["good"]


def test_bulk_job_stores_media_and_rewrites_urls(db_url, backend, tmp_path, monkeypatch):
    """Each bulk step stores its archive's media like the asset job: same keys, columns pointing at them."""
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    path = write_zip(tmp_path / "drop" / "conf.zip", media_event())

    result = _run_bulk({"paths": [str(path)]})
    assert result.success
    [(event_id, key)] = rows(db_url, "select id, import_key from events")
    assert key == "conf"
    check_media_stored(db_url, backend, event_id, path)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bulk_job_takes_an_s3_prefix(db_url, tmp_path, monkeypatch):
    """Archives on S3 (a moto server on loopback): listed like a folder, each downloaded by its own step."""
    moto_server = pytest.importorskip("moto.server")
    import socket

    from event_pipeline.intake import s3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
        client = s3.client()
        client.create_bucket(Bucket="exports")
        for name in ("alpha.zip", "beta.zip", "notes.txt", "nested/gamma.zip"):
            client.upload_file(str(_archive(tmp_path / "up" / Path(name).name)), "exports", f"drop/{name}")

        result = _run_bulk({"paths": ["s3://exports/drop"]})
        assert result.success
        assert sorted(r[0] for r in rows(db_url, "select import_key from events")) == ["alpha", "beta"]
        # As in the asset job: the row names the downloaded copy, which maps back to its object.
        paths = {key: s3.source_for(path) for key, path in rows(db_url, "select key, archive_path from import_jobs")}
        assert paths == {"alpha": "s3://exports/drop/alpha.zip", "beta": "s3://exports/drop/beta.zip"}
    finally:
        server.stop()


# --- the executor config the job and its workers share ------------------------------


def test_job_runs_on_the_celery_executor_configured_from_the_shared_yaml(tmp_path, monkeypatch):
    job = defs.resolve_job_def(bulk.BULK_JOB_NAME)
    assert job.executor_def.name == "celery"
    shared = REPO / "deploy" / "celery.yaml"
    assert bulk.celery_config_path() == shared
    worker_view = get_validated_config(str(shared))  # what `dagster-celery worker start -y` reads
    job_view = bulk.celery_executor_config()
    assert {k: worker_view[k] for k in job_view} == job_view
    assert job_view["config_source"]["task_acks_late"] is True
    assert job_view["config_source"]["task_reject_on_worker_lost"] is True

    other = tmp_path / "celery.yaml"
    other.write_text("execution:\n  config:\n    broker: {env: MY_BROKER}\n")
    monkeypatch.setenv(bulk.CELERY_CONFIG_ENV, str(other))
    assert bulk.celery_executor_config() == {"broker": {"env": "MY_BROKER"}}


def test_deployment_config_takes_the_broker_from_the_environment(monkeypatch):
    """deploy/celery.k8s.yaml (the image's default) is valid for the worker CLI and the job alike."""
    path = REPO / "deploy" / "celery.k8s.yaml"
    monkeypatch.setenv("EVENT_PIPELINE_CELERY_BROKER", "amqp://u:p@rabbitmq:5672/imports")
    worker_view = get_validated_config(str(path))
    assert worker_view["broker"] == "amqp://u:p@rabbitmq:5672/imports"
    local = bulk.celery_executor_config(REPO / "deploy" / "celery.yaml")
    assert worker_view["config_source"] == local["config_source"]  # same delivery guarantees as tested here
    assert bulk.celery_executor_config(path)["broker"] == {"env": "EVENT_PIPELINE_CELERY_BROKER"}
