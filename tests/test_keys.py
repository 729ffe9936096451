"""One archive key rule everywhere: the CLI, the bulk import, the drop-folder sensor and the asset job.

The rule (README, "Archive keys"): the file name without ``.zip`` in any case;
1 to 128 ASCII letters, digits, ``.``, ``_`` or ``-``; not starting with ``.``
or ``-``; no ``..``. Anything else is refused with one exact message before a
partition, a run, a row or a path is made from it.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import import_archive, rows, run_cli, scalar
from expectations import INVALID, LONG, RULE
from test_sensors import execute, tick

from event_pipeline import bulk
from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.intake import keys
from event_pipeline.sensors.reimport import reimport_plan

# --- the same file name, the same key, through every door ------------------------------------


def _run_bulk(config: dict) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(bulk.BULK_JOB_NAME)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance, run_config={"ops": {"find_archives": {"config": config}}}, raise_on_error=False
        )


def test_one_file_name_gives_one_key_through_sensor_cli_and_bulk(db_url, monkeypatch):
    """``Conf.Zip`` used to be ``Conf.Zip`` through the CLI and ``Conf`` through the sensor: two events."""
    drop_dir = Path(os.environ["EVENT_PIPELINE_DROP_DIR"])
    archive = write_zip(drop_dir / "Conf.Zip", kebab_event())

    with dg.DagsterInstance.get() as instance:
        first = tick(instance)
        [request] = tick(instance, first.cursor).run_requests
        assert request.partition_key == "Conf"
        assert execute(instance, request, db_url).success

    code, result = import_archive(archive, db_url)
    assert code == 0 and result["key"] == "Conf"
    assert result["unchanged_archive"] is True  # the same event, found unchanged: not a second one

    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    with dg.DagsterInstance.get() as instance:
        engine = get_engine(db_url)
        assert [i["key"] for i in bulk.bulk_items(instance, engine, [str(drop_dir)], False)] == ["Conf"]
        assert [i["key"] for i in bulk.bulk_items(instance, engine, [str(archive)], False)] == ["Conf"]
    outcome = _run_bulk({"paths": [str(archive)], "force": True})
    assert outcome.success

    assert [tuple(r) for r in rows(db_url, "select import_key, name from events")] == [("Conf", "Test Conf")]
    assert [tuple(r) for r in rows(db_url, "select key, state from import_jobs order by id")] == [
        ("Conf", "SUCCESS"),
        ("Conf", "SUCCESS"),
        ("Conf", "SUCCESS"),
    ]
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("archives") == ["Conf"]


# --- refused before anything is built from it -----------------------------------------------------


def _nothing_made(url: str) -> None:
    engine = get_engine(url, create_schema=False)
    if sa.inspect(engine).has_table("import_jobs"):
        assert scalar(url, "select count(*) from import_jobs") == 0
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("archives") == []
        assert instance.get_runs() == []


@pytest.mark.parametrize("key", ["x/y", ".", "..", LONG], ids=["slash", "dot", "dotdot", "5000"])
def test_cli_refuses_an_invalid_key_before_anything(db_url, tmp_path, key):
    archive = write_zip(tmp_path / "fine.zip", kebab_event())
    message = keys.key_error(key)
    assert message == dict(INVALID)[key] + "; " + RULE
    for command, state in (("import", "FAILURE"), ("validate", "INVALID")):
        code, result, out = run_cli(command, str(archive), "--key", key, "--database-url", db_url)
        assert code == 1 and len(out.strip().splitlines()) == 1
        assert result == {
            "state": state,
            "error": f"key: {message}",
            "errors": [{"file": None, "record_id": None, "field": "key", "message": message}],
            "warnings": [],
            "errors_total": 1,
            "warnings_total": 0,
        }
    _nothing_made(db_url)
    assert not (tmp_path / "data").exists()  # no data folder, no Dagster storage path


def test_cli_refuses_a_file_name_that_gives_no_key(db_url, tmp_path):
    archive = write_zip(tmp_path / "my conf.zip", kebab_event())
    message = f"invalid archive key 'my conf': it contains ' '; {RULE}"
    code, result, _ = run_cli("import", str(archive), "--database-url", db_url)
    assert code == 1 and result["errors"] == [{"file": None, "record_id": None, "field": "key", "message": message}]
    _nothing_made(db_url)
    code, result = import_archive(archive, db_url, "--key", "my-conf")  # --key is the way out
    assert code == 0 and result["key"] == "my-conf"


def test_drop_sensor_skips_files_whose_name_gives_no_key(drop_dir_with_bad_names, capfd):
    drop_dir, good = drop_dir_with_bad_names
    with dg.DagsterInstance.get() as instance:
        first = tick(instance)
        logged = capfd.readouterr().err
        second = tick(instance, first.cursor)
    [request] = second.run_requests
    assert request.partition_key == "Good" and request.run_config["ops"]["archive"]["config"]["path"] == str(good)
    for name, reason in BAD_NAMES.items():
        printable = name.encode("utf-8", "backslashreplace").decode()
        assert f"ignoring {printable}: its name gives no valid key: {reason}; {RULE}" in logged, name


BAD_NAMES = {
    "a b.zip": "invalid archive key 'a b': it contains ' '",
    "x..y.zip": "invalid archive key 'x..y': it contains '..'",
    "-rf.ZIP": "invalid archive key '-rf': it starts with '-'",
    "k" * 129 + ".zip": f"invalid archive key '{'k' * 40}...': it is 129 characters long",
    os.fsdecode(b"bad\xff.zip"): "invalid archive key 'bad\\udcff': it contains '\\udcff'",
}


@pytest.fixture
def drop_dir_with_bad_names() -> tuple[Path, Path]:
    drop_dir = Path(os.environ["EVENT_PIPELINE_DROP_DIR"])
    drop_dir.mkdir(parents=True)
    for name in BAD_NAMES:
        (drop_dir / name).write_bytes(b"PK")
    return drop_dir, write_zip(drop_dir / "Good.ZIP", kebab_event())


def test_bulk_skips_folder_files_and_refuses_named_files_that_give_no_key(db_url, drop_dir_with_bad_names, monkeypatch):
    drop_dir, good = drop_dir_with_bad_names
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    skipped: list[tuple[str, str]] = []
    with dg.DagsterInstance.get() as instance:
        items = bulk.bulk_items(instance, get_engine(db_url), [str(drop_dir)], False, skipped)
    assert [(i["key"], i["path"]) for i in items] == [("Good", str(good))]
    assert sorted(skipped) == sorted(
        (str(drop_dir / name), f"its name gives no valid key: {reason}; {RULE}") for name, reason in BAD_NAMES.items()
    )

    named = drop_dir / "a b.zip"
    with pytest.raises(keys.InvalidKey) as raised, dg.DagsterInstance.get() as instance:
        bulk.bulk_items(instance, get_engine(db_url), [str(good), str(named)], False)
    assert str(raised.value) == f"{named}: invalid archive key 'a b': it contains ' '; {RULE}"

    outcome = _run_bulk({"paths": [str(good), str(named)]})
    assert not outcome.success
    [failure] = [e for e in outcome.all_events if e.is_step_failure]
    assert failure.step_key == "find_archives"
    assert failure.step_failure_data.user_failure_data.description == str(raised.value)
    assert scalar(db_url, "select count(*) from import_jobs") == 0
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("archives") == []


def test_bulk_and_reimport_skip_known_keys_that_break_the_rule(db_url, tmp_path, monkeypatch):
    """A partition made before the rule existed ("my conf") is skipped, the others are imported."""
    good = write_zip(tmp_path / "ok.zip", kebab_event())
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    assert import_archive(good, db_url)[0] == 0
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("archives", ["my conf"])
        skipped: list[tuple[str, str]] = []
        items = bulk.bulk_items(instance, get_engine(db_url), [], False, skipped)
    assert [i["key"] for i in items] == ["ok"]
    assert skipped == [("my conf", f"invalid archive key 'my conf': it contains ' '; {RULE}")]
    todo, skipped_keys = reimport_plan({"ok": str(good), "my conf": str(good)}, ["ok", "my conf"])
    assert todo == {"ok": str(good)} and skipped_keys == ["my conf"]


def test_asset_job_refuses_a_partition_that_breaks_the_rule(db_url, monkeypatch, tmp_path):
    archive = write_zip(tmp_path / "fine.zip", kebab_event())
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("archives", ["a b"])  # from the UI or the API
        outcome = defs.resolve_job_def(IMPORT_JOB_NAME).execute_in_process(
            instance=instance,
            partition_key="a b",
            run_config={"ops": {"archive": {"config": {"path": str(archive)}}}},
            raise_on_error=False,
        )
    assert not outcome.success
    [failure] = [e for e in outcome.all_events if e.is_step_failure]
    assert failure.step_key == "archive"
    assert failure.step_failure_data.user_failure_data.description == (
        f"key: invalid archive key 'a b': it contains ' '; {RULE}"
    )
    assert scalar(db_url, "select count(*) from import_jobs") == 0


def test_bulk_import_one_archive_refuses_an_invalid_key(db_url, tmp_path):
    archive = write_zip(tmp_path / "fine.zip", kebab_event())
    with pytest.raises(dg.Failure) as raised:
        bulk.import_one_archive(get_engine(db_url), "../escape", str(archive), "run/0")
    assert raised.value.description == f"key: invalid archive key '../escape': it contains '/'; {RULE}"
    assert scalar(db_url, "select count(*) from import_jobs") == 0
