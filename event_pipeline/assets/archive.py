"""The ``archive`` asset: read and validate the whole archive before any write."""

import contextlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.assets.common import ARCHIVES, GROUP, HOST_TAG, KEY_TAG, PID_TAG, failure, reported
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive, open_source, validate_archive
from event_pipeline.intake import keys, roots, s3
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish import import_log
from event_pipeline.read.private_copy import file_sha256
from event_pipeline.resources import DatabaseResource


class ArchiveConfig(dg.Config):
    path: str = Field(
        default="",
        description="Archive to import. Empty: the file this key was last imported from, else <drop folder>/<key>.zip.",
    )
    force: bool = Field(default=False, description="Re-import even if the archive's bytes are unchanged.")


def import_run_config(path: str, *, force: bool = False) -> dg.RunConfig:
    """The run config of one import (CLI, sensor, schedule): the ``archive`` asset's :class:`ArchiveConfig`.
    The URL of the database is never part of it (see ``resources/database.py``)."""
    return dg.RunConfig(ops={"archive": ArchiveConfig(path=path, force=force)})


def configured_path(run_config: Mapping[str, Any]) -> str | None:
    """The archive path a stored run's config names (the dict Dagster keeps of :func:`import_run_config`), or None."""
    try:
        return run_config["ops"]["archive"]["config"]["path"] or None
    except (KeyError, TypeError):
        return None


def resolve_path(configured: str, key: str, last_known: str | None) -> str:
    """The archive to import; a downloaded S3 copy resolves to its s3:// source, to fetch it afresh."""
    if configured:
        return s3.source_for(configured)
    if last_known:
        return s3.source_for(last_known)
    current = settings.current()
    if current.drop_url:
        return f"{current.drop_url.rstrip('/')}/{key}.zip"
    return str(current.drop_dir / f"{key}.zip")


def fail_interrupted_runs(instance: dg.DagsterInstance, engine: Engine, key: str, current_run_id: str) -> None:
    """Runs of this key whose process was killed (kill -9, power loss) stay RUNNING/STARTED
    forever; mark them failed, in ``import_jobs`` and in Dagster. Only what can be
    told for sure: processes of this host that no longer exist."""
    dead = set(import_log.fail_interrupted(engine, key, current_run_id))
    started = instance.get_runs(
        dg.RunsFilter(
            tags={KEY_TAG: key},
            statuses=[dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
        )
    )
    for run in started:
        if run.run_id == current_run_id:
            continue
        pid = run.tags.get(PID_TAG)
        if run.run_id in dead or not import_log.process_alive(run.tags.get(HOST_TAG), int(pid) if pid else None):
            import_log.mark_interrupted(engine, key=key, run_id=run.run_id)
            instance.report_run_failed(run, import_log.INTERRUPTED)


def _note_failed_bytes(engine: Engine, run_id: str, local: str) -> None:
    """The sha256 of an archive that failed validation goes on its row, so the scheduled re-import
    skips the same bytes (``sensors/reimport.py``) instead of failing and mailing on every tick."""
    with contextlib.suppress(OSError):  # unreadable: nothing to remember, the next run tries again
        import_log.note_sha256(engine, run_id, file_sha256(Path(local)))


@dg.asset(partitions_def=ARCHIVES, group_name=GROUP)
def archive(context: dg.AssetExecutionContext, config: ArchiveConfig, database: DatabaseResource) -> ValidatedArchive:
    """The archive, read and normalised as a whole; every problem is reported at once."""
    require_whole_import(context)
    key = context.partition_key
    error = keys.key_error(key)
    if error:  # a partition added from outside (UI, API): refused before a path or a row is made from it
        raise failure([Problem(None, None, "key", error)], [])
    engine = database.engine()
    path = resolve_path(config.path, key, import_log.last_archive_path(engine, key))
    refused = roots.refusal(path)
    if refused:  # the launchpad takes any path: only the archive roots are read (not recorded as a path to reuse)
        with reported():  # the failure hook closes the run's row with this problem
            raise ImportFailed([Problem(None, None, "path", refused)])
    fail_interrupted_runs(context.instance, engine, key, context.run.run_id)
    import_log.open_job(engine, key=key, run_id=context.run.run_id, path=path, sha256=None)
    context.log.info(f"importing {path} as {key!r} into {database.describe()}")
    with reported():
        local = open_source(path)
        try:
            validated = validate_archive(engine, local, key, force=config.force)
        except ImportFailed:
            _note_failed_bytes(engine, context.run.run_id, local)
            raise
    kinds = Counter(w.file for w in validated.warnings)
    context.log.info(
        f"archive {key}: sha256 {validated.sha256[:12]}, "
        + ("unchanged since the last import" if validated.unchanged else f"{len(validated.warnings)} warnings")
    )
    context.add_output_metadata(
        {
            "archive_path": path,
            "archive_sha256": validated.sha256,
            "unchanged": validated.unchanged,
            "event_id": validated.target.event_id,
            "warnings": len(validated.warnings),
            "warnings_by_file": dg.MetadataValue.json({str(file): n for file, n in kinds.items()}),
        }
    )
    return validated
