"""The export command, its fixed dialects, the Dagster ``export`` asset, and its failures.

The round trip of the ``source`` dialect over every sample and case is in
``test_export_roundtrip.py``; here: the ``kebab`` and ``snake`` dialects write
what their generation wrote (key sets taken from the sample archive and from
the reference server's ``export_helpers.FIELD_ORDER``) and lose nothing on
re-import, the same event exports to the same bytes from SQLite and
PostgreSQL, the asset's materialization carries the zip's path, size and
sha256, and an export that cannot be made writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import run_cli, sample
from roundtrip import another_database, import_quickly, snapshot

from event_pipeline.db import get_engine
from event_pipeline.definitions import IMPORT_JOB_NAME, defs
from event_pipeline.model.catalog import MODELS
from event_pipeline.read.fields import fold_key

# The reference server's current export, app/api/helpers/export_helpers.py FIELD_ORDER (sessions, speakers).
SERVER_SESSION_KEYS = {
    "id", "title", "subtitle", "short_abstract", "long_abstract", "starts_at", "ends_at", "session_type_id",
    "track_id", "comments", "language", "slides_url", "audio_url", "video_url",
}  # fmt: skip
SERVER_SPEAKER_KEYS = {
    "id", "name", "email", "mobile", "photo_url", "organisation", "position", "country", "short_biography",
    "long_biography", "website", "twitter", "facebook", "github", "linkedin",
}  # fmt: skip


def _json(path, member: str):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(member))


def test_each_dialect_name_reads_back_as_its_field():
    for spec in MODELS:
        for dialect, names in spec.export_names.items():
            for name, written in names.items():
                folded = fold_key(written)
                assert spec.aliases.get(folded, folded) == name, (spec.name, dialect, written)
                assert name in spec.record.model_fields


@pytest.mark.parametrize("dialect", ["kebab", "snake"])
def test_fixed_dialects_write_their_generation_and_lose_nothing(db_url, tmp_path, dialect):
    archive = sample("FOSSASIASummit2016")
    import_quickly(archive, db_url, "conf")
    out = tmp_path / f"conf-{dialect}.zip"
    code, result, _ = run_cli("export", "conf", str(out), "--dialect", dialect, "--database-url", db_url)
    assert code == 0, result
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    data = ["event", "forms", "microlocations", "session_types", "speakers", "sponsors", "tracks", "sessions", "meta"]
    assert names[:9] == data
    assert names[9:] == sorted(names[9:]) and all(n.startswith("images/") for n in names[9:])
    sessions, speakers = _json(out, "sessions"), _json(out, "speakers")
    original = _json(archive, "sessions")
    assert len(sessions) == len(original) == 491
    if dialect == "kebab":
        assert set(original[0]) <= set(sessions[0])  # every key the 2016 export wrote
        by_id = {s["id"]: s for s in sessions}
        for source in original:  # references as objects with id and name, links from both sides
            assert by_id[source["id"]]["track"] == {"id": source["track"]["id"], "name": source["track"]["name"]}
            assert sorted(s["id"] for s in by_id[source["id"]]["speakers"]) == sorted(
                s["id"] for s in source["speakers"]
            )
        assert all("sessions" in s for s in speakers)
        assert "social-links" in _json(out, "event")
    else:
        assert set(sessions[0]) >= SERVER_SESSION_KEYS and set(speakers[0]) >= SERVER_SPEAKER_KEYS
        track_ids = {t["name"]: t["id"] for t in _json(archive, "tracks")}
        by_id = {s["id"]: s for s in sessions}
        for source in original:
            assert by_id[source["id"]]["track_id"] == track_ids[source["track"]["name"]]
            assert by_id[source["id"]]["event_id"] == 20  # the sample's event id
    # Imported into a fresh database: the same rows (the archive's recorded shape aside: it is another archive).
    fresh = another_database(db_url)
    import_quickly(out, fresh, "conf")
    assert snapshot(fresh, "conf", skip=("archive_format",)) == snapshot(db_url, "conf", skip=("archive_format",))
    get_engine(fresh).dispose()


def test_same_event_exports_to_the_same_bytes_from_sqlite_and_postgresql(tmp_path, pg_database):
    archive = sample("OTS16")
    digests = []
    for url in (f"sqlite:///{tmp_path / 'a.db'}", pg_database):
        import_quickly(archive, url, "ots")
        out = tmp_path / f"{len(digests)}.zip"
        code, result, _ = run_cli("export", "ots", str(out), "--database-url", url)
        assert code == 0, result
        assert result["export"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        digests.append(result["export"]["sha256"])
    assert digests[0] == digests[1]


def test_export_asset_materialization_carries_path_size_and_sha256(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", db_url)
    import_quickly(sample("FOSSASIASummit2014"), db_url, "FOSSASIASummit2014")
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("archives", ["FOSSASIASummit2014"])  # what an import through the job does
    assert dg.AssetKey("export") not in defs.resolve_job_def(IMPORT_JOB_NAME).asset_layer.selected_asset_keys
    export_job = defs.resolve_job_def("export_archive")
    assert export_job.asset_layer.selected_asset_keys == {dg.AssetKey("export")}
    run = export_job.execute_in_process(
        partition_key="FOSSASIASummit2014",
        instance=instance,
        run_config={"ops": {"export": {"config": {"folder": str(tmp_path), "dialect": "source"}}}},
    )
    assert run.success
    [materialization] = run.asset_materializations_for_node("export")
    metadata = materialization.metadata
    path = tmp_path / "FOSSASIASummit2014.zip"
    assert metadata["path"].value == str(path)
    assert metadata["size"].value == path.stat().st_size
    assert metadata["sha256"].value == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _json(path, "sessions")[0]["title"] == _json(sample("FOSSASIASummit2014"), "sessions")[0]["title"]


def test_an_export_that_cannot_be_made_writes_nothing(db_url, tmp_path):
    import_quickly(sample("FOSSASIASummit2014"), db_url, "conf")
    out = tmp_path / "x.zip"
    code, result, _ = run_cli("export", "nope", str(out), "--database-url", db_url)
    assert (code, result["state"]) == (1, "FAILURE")
    assert "no event with archive key 'nope'" in result["error"]
    assert not out.exists()
    # An event imported before archive formats were recorded: no source dialect, the fixed ones still work.
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.text("UPDATE events SET archive_format = NULL"))
    code, result, _ = run_cli("export", "conf", str(out), "--database-url", db_url)
    assert (code, result["state"]) == (1, "FAILURE") and "--force" in result["error"]
    assert not out.exists() and list(tmp_path.glob(".x.zip*")) == []
    code, result, _ = run_cli("export", "conf", str(out), "--dialect", "kebab", "--database-url", db_url)
    assert code == 0 and out.exists(), result
    code, result, _ = run_cli("export", "conf", str(out), "--dialect", "yaml", "--database-url", db_url)
    assert code == 2 and result["state"] == "FAILURE"
