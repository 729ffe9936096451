"""Which archives a bulk import takes, and the names of their steps (plain Python, no run needed)."""

import re
from pathlib import Path, PurePosixPath
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline.assets.archive import resolve_path
from event_pipeline.assets.common import ARCHIVES_NAME
from event_pipeline.intake import keys, roots, s3
from event_pipeline.intake.drop import ignore_reason
from event_pipeline.model.schema import import_jobs
from event_pipeline.publish import import_log


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
