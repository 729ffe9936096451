"""``bulk_import``: many archives, one step per archive, on Dagster's Celery executor.

::

    find_archives --(one dynamic output per archive)--> import_one[...] --> bulk_summary

``find_archives`` lists the archives: the paths given in run config (a folder
or an ``s3://`` prefix means the archives directly in it), else every known
key (the ``archives`` dynamic partitions and the keys in ``import_jobs``),
each from the file it was last imported from or the drop folder.
``import_one`` imports one archive with the same plain steps as the asset job
(validate, plan, store media, publish in one transaction), with its own
``import_jobs`` row (``run_id`` = ``<dagster run id>/<index>``), while
holding the key's advisory lock (``locks.py``): the same key is never
imported by two workers at once.

The executor is ``dagster-celery``'s, configured from the YAML file the
workers are started with (``deploy/celery.yaml``, or
``EVENT_PIPELINE_CELERY_CONFIG``), so the job and its workers cannot
disagree about the broker, and the broker URL stays out of run config. A
worker killed mid-import is covered by ``task_acks_late`` there: the step's
message was not acknowledged, so the broker hands it to another worker,
which imports the archive again; nothing of the killed attempt was
committed (one transaction per import). See docs/deploy.md.
"""

from typing import Any

import dagster as dg
from dagster_celery import celery_executor
from pydantic import Field
from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.assets import materializations
from event_pipeline.assets.common import ARCHIVES_NAME, reported
from event_pipeline.bulk.celery_config import CELERY_CONFIG_ENV, celery_config_path, celery_executor_config
from event_pipeline.bulk.items import bulk_items, bulk_job_id, expand_paths, known_keys, mapping_keys
from event_pipeline.importer import import_archive
from event_pipeline.intake import keys
from event_pipeline.media import FetchPolicy, Storage
from event_pipeline.resources import DatabaseResource, MediaStorageResource

__all__ = [
    "BULK_JOB_NAME",
    "CELERY_CONFIG_ENV",
    "bulk_import_job",
    "bulk_items",
    "bulk_job_id",
    "celery_config_path",
    "celery_executor_config",
    "expand_paths",
    "import_one_archive",
    "known_keys",
    "mapping_keys",
]

BULK_JOB_NAME = "bulk_import"


def import_one_archive(
    engine: Engine,
    key: str,
    path: str,
    job_id: str,
    *,
    force: bool = False,
    storage: Storage | None = None,
    policy: FetchPolicy | None = None,
    lock_timeout: float | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """One archive of the bulk job: :func:`event_pipeline.importer.import_archive` (a file or an
    ``s3://`` object, under its key's lock), its problems raised as a ``dg.Failure``."""
    with reported():
        return import_archive(
            engine,
            key,
            path,
            job_id,
            force=force,
            storage=storage,
            policy=policy,
            lock_timeout=lock_timeout,
            progress=log.info if log is not None else None,
        )


# ---------------------------------------------------------------------------
# The Dagster job


class BulkConfig(dg.Config):
    paths: list[str] = Field(
        default_factory=list,
        description="Archives to import (key = file name without .zip, see README); a folder means its *.zip files. "
        "Empty: every known key (the `archives` partitions and the keys in import_jobs).",
    )
    force: bool = Field(default=False, description="Re-import archives whose bytes are unchanged.")


@dg.op(out=dg.DynamicOut(dict), description="List the archives to import; one output (and step) per archive.")
def find_archives(context: dg.OpExecutionContext, config: BulkConfig, database: DatabaseResource):
    engine = database.engine()
    skipped: list[tuple[str, str]] = []
    try:
        items = bulk_items(context.instance, engine, config.paths, config.force, skipped)
    except keys.InvalidKey as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    for where, reason in skipped:
        context.log.warning(f"not importing {where}: {reason}")
    new_keys = sorted({i["key"] for i in items} - set(context.instance.get_dynamic_partitions(ARCHIVES_NAME)))
    if new_keys:  # every imported key gets its partition, so the UI shows it and the next bulk run knows it
        context.instance.add_dynamic_partitions(ARCHIVES_NAME, new_keys)
    context.log.info(f"{len(items)} archives to import into {database.describe()}")
    for item in items:
        yield dg.DynamicOutput(
            item, mapping_key=item["mapping_key"], metadata={"key": item["key"], "path": item["path"]}
        )


@dg.op(
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),  # transient errors; invalid archives never retry
    description="Import one archive (validate, plan, media, publish in one transaction) under its key's lock.",
)
def import_one(
    context: dg.OpExecutionContext, item: dict, database: DatabaseResource, media_storage: MediaStorageResource
) -> dict:
    engine = database.engine()
    job_id = bulk_job_id(context.run.run_id, item["index"])
    context.log.info(f"importing {item['path']} as {item['key']!r} (import_jobs run_id {job_id})")
    outcome = import_one_archive(
        engine,
        item["key"],
        item["path"],
        job_id,
        force=item["force"],
        storage=media_storage.storage(),
        policy=media_storage.fetch_policy(),
        log=context.log,
    )
    for event in materializations.of_import(
        outcome, partition=item["key"], source=f"bulk import, import_jobs run_id {job_id}"
    ):
        context.log_event(event)  # the bulk import shows in the asset catalog, partition by partition
    diff = outcome["diff"]
    summary = {
        "key": item["key"],
        "event_id": outcome["result"]["id"],
        "unchanged_archive": outcome["unchanged_archive"],
        **{k: diff[k] for k in ("created", "updated", "deleted", "unchanged")},
        "warnings": len(outcome["warnings"]),
    }
    context.add_output_metadata({**summary, "url": dg.MetadataValue.url(outcome["result"]["url"])})
    return summary


@dg.op(description="Totals of the bulk import (runs when every archive succeeded).")
def bulk_summary(context: dg.OpExecutionContext, results: list[dict]) -> dict:
    totals: dict[str, Any] = {"archives": len(results)}
    totals["unchanged_archives"] = sum(1 for r in results if r["unchanged_archive"])
    for k in ("created", "updated", "deleted", "unchanged", "warnings"):
        totals[k] = sum(r[k] for r in results)
    context.log.info(f"bulk import done: {totals}")
    context.add_output_metadata(totals)
    return totals


def _io_manager() -> dg.FilesystemIOManager:
    """Step outputs (small dicts) go through files: ``EVENT_PIPELINE_IO_DIR`` when workers run on
    several machines (a volume they all mount), else the instance's storage folder."""
    return dg.FilesystemIOManager(base_dir=settings.current().io_dir)


@dg.job(
    name=BULK_JOB_NAME,
    executor_def=celery_executor.configured(celery_executor_config()),
    resource_defs={
        "database": DatabaseResource.from_settings(),
        "media_storage": MediaStorageResource.from_settings(),
        "io_manager": _io_manager(),
    },
    tags={"event_pipeline/source": "bulk"},
    description="Import many archives, one step per archive, on the Celery executor "
    "(paths in config, or every known key).",
)
def bulk_import_job():
    bulk_summary(find_archives().map(import_one).collect())
