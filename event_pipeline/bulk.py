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

import re
from pathlib import Path, PurePosixPath
from typing import Any

import dagster as dg
import yaml
from dagster_celery import celery_executor
from pydantic import Field
from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.assets import materializations
from event_pipeline.assets.archive import resolve_path
from event_pipeline.assets.common import ARCHIVES_NAME, reported
from event_pipeline.importer import import_archive
from event_pipeline.intake import keys, roots, s3
from event_pipeline.intake.drop import ignore_reason
from event_pipeline.media import FetchPolicy, Storage
from event_pipeline.model.schema import import_jobs
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource, MediaStorageResource

BULK_JOB_NAME = "bulk_import"
CELERY_CONFIG_ENV = "EVENT_PIPELINE_CELERY_CONFIG"
DEFAULT_CELERY_CONFIG: dict[str, Any] = {
    "broker": "amqp://guest:guest@127.0.0.1:5672//",
    "backend": "rpc://",
    "config_source": {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
    },
}


def celery_config_path() -> Path | None:
    """``EVENT_PIPELINE_CELERY_CONFIG``, else ``deploy/celery.yaml`` of a checkout (or image), else none."""
    configured = settings.current().celery_config
    if configured:
        return configured
    default = settings.PROJECT_DIR / "deploy" / "celery.yaml"
    return default if default.is_file() else None


def celery_executor_config(path: Path | None = None) -> dict[str, Any]:
    """The ``execution: config:`` block of the shared YAML (what ``dagster-celery worker start -y`` reads)."""
    path = path or celery_config_path()
    if path is None:
        return dict(DEFAULT_CELERY_CONFIG)
    parsed = yaml.safe_load(path.read_text()) or {}
    return dict((parsed.get("execution") or {}).get("config") or {})


# ---------------------------------------------------------------------------
# The plain steps


def _dagster_takes(mapping_key: str) -> bool:
    """Whether Dagster accepts ``mapping_key``: asked of ``dg.DynamicOutput`` itself, which checks it by
    Dagster's own rule (its regex and its reserved words), so the rule is never copied here."""
    try:
        dg.DynamicOutput(None, mapping_key=mapping_key)
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def mapping_keys(keys: list[str]) -> list[str]:
    """Dagster mapping keys (``[A-Za-z0-9_]+``, unique, not a reserved word) that read like the archive keys."""
    seen: set[str] = set()
    out = []
    for key in keys:
        base = re.sub(r"[^A-Za-z0-9_]", "_", key) or "archive"
        if not _dagster_takes(base):  # "conf", "input", "class": one such archive failed the whole run
            base += "_"
        candidate, n = base, 1
        while candidate in seen:
            n += 1
            candidate = f"{base}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def expand_paths(paths: list[str], skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """Files as given; a folder, or an ``s3://`` prefix not ending in ``.zip``, stands for the
    archives directly in it (as the drop folder sensor takes them), in name order.

    What a folder or prefix holds that the sensor would not take (not a
    ``.zip``, hidden, a name that gives no valid key) is left out and, if
    ``skipped`` is given, appended to it as ``(path, reason)``.
    """
    found: list[str] = []
    skipped = [] if skipped is None else skipped

    def take(name: str, where: str) -> None:
        reason = ignore_reason(name)
        if reason:
            skipped.append((where, reason))
        else:
            found.append(where)

    for given in paths:
        folder = not given.lower().endswith(".zip") if s3.is_s3(given) else Path(given).expanduser().is_dir()
        refused = roots.refusal(given) if folder else None  # a file outside the roots: refused by its import
        if refused:  # a folder or prefix outside the roots is not even listed
            skipped.append((given, refused))
            continue
        if s3.is_s3(given):
            if given.lower().endswith(".zip"):
                found.append(given)
            else:
                for url in sorted(o.url for o in s3.list_archives(given)):
                    take(PurePosixPath(url).name, url)
            continue
        path = Path(given).expanduser().resolve()
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file():
                    take(child.name, str(child))
        else:
            found.append(str(path))
    return found


def known_keys(instance: dg.DagsterInstance, engine: Engine) -> list[str]:
    """Every archive key this installation knows: the partitions and the keys in ``import_jobs``."""
    with engine.connect() as conn:
        in_jobs = set(conn.execute(import_jobs.select().with_only_columns(import_jobs.c.key).distinct()).scalars())
    return sorted(set(instance.get_dynamic_partitions(ARCHIVES_NAME)) | in_jobs)


def bulk_items(
    instance: dg.DagsterInstance,
    engine: Engine,
    paths: list[str],
    force: bool,
    skipped: list[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """What to import: ``{"key", "path", "force", "index", "mapping_key"}`` per archive.

    Keys follow :mod:`event_pipeline.intake.keys`. A file named in ``paths`` whose
    name gives no valid key raises :class:`~event_pipeline.intake.keys.InvalidKey`
    (naming every such file) before anything is imported; files of a folder
    and known keys that break the rule are appended to ``skipped`` as
    ``(path or key, reason)`` instead.
    """
    skipped = [] if skipped is None else skipped
    if paths:
        pairs, invalid = [], []
        for path in expand_paths(paths, skipped):
            try:
                pairs.append((keys.key_for(path), path))
            except keys.InvalidKey as exc:
                invalid.append(f"{path}: {exc}")
        if invalid:
            raise keys.InvalidKey("; ".join(invalid))
    else:
        pairs = []
        for key in known_keys(instance, engine):
            error = keys.key_error(key)
            if error:
                skipped.append((key, error))
            else:
                pairs.append((key, resolve_path("", key, import_log.last_archive_path(engine, key))))
    return [
        {"key": key, "path": path, "force": force, "index": i, "mapping_key": mk}
        for i, ((key, path), mk) in enumerate(zip(pairs, mapping_keys([k for k, _ in pairs]), strict=True))
    ]


def bulk_job_id(run_id: str, index: int) -> str:
    """The ``import_jobs.run_id`` of one archive of a bulk run (one run, many imports)."""
    return f"{run_id}/{index}"


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
