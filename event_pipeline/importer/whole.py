"""A whole import in one call, for entry points that do not run the asset graph (the bulk job).

The same steps as the asset job, in the same order: the key checked, the
key's lock taken, the ``import_jobs`` row opened, the source opened,
validate, plan, store the media, publish in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from event_pipeline.collector import release_frozen
from event_pipeline.importer.failures import record_failure
from event_pipeline.importer.planning import plan_all
from event_pipeline.importer.publishing import publish_step
from event_pipeline.importer.validating import validate_archive
from event_pipeline.intake import keys, roots, s3
from event_pipeline.model.catalog import MEDIA_MODELS
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish import import_log
from event_pipeline.publish.locks import key_lock


def open_source(path: str) -> str:
    """The local file to read for archive ``path`` (a file, or an ``s3://`` object downloaded to
    ``<data dir>/s3/``). Raises :class:`ImportFailed` naming ``path`` when the file cannot be an
    archive (missing, a folder, a FIFO or a device, which would block or never end)."""
    local = str(s3.fetch(path)) if s3.is_s3(path) else path
    unusable = keys.file_problem(local)
    if unusable:
        raise ImportFailed([Problem(Path(path).name, None, None, unusable.replace(local, path))])
    return local


def import_archive(
    engine: Engine,
    key: str,
    path: str,
    run_id: str,
    *,
    force: bool = False,
    storage: Any = None,
    policy: Any = None,
    lock_timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Import archive ``path`` as ``key`` while holding the key's lock; return the result JSON.

    Raises :class:`ImportFailed` (every problem) or whatever else stopped the
    import; either way nothing of it is committed and the ``import_jobs`` row
    of ``run_id`` is FAILURE, except for a key that breaks the key rule or a
    path outside the archive roots (``intake/roots.py``), refused before any
    row (or lock, or file) is made from them. Media are stored
    when a ``storage`` (``event_pipeline.media.Storage``) is given.
    """
    say = progress or (lambda message: None)
    error = keys.key_error(key)
    if error:
        raise ImportFailed([Problem(None, None, "key", error)])
    refused = roots.refusal(path)
    if refused:  # a run reads archives only from the archive roots
        raise ImportFailed([Problem(None, None, "path", refused)])

    def waiting(holders: list[int]) -> None:
        say(f"{key}: another import of this key is running (server pid {holders}); waiting for it")

    try:
        with key_lock(engine, key, timeout=lock_timeout, on_wait=waiting):
            import_log.fail_interrupted(engine, key, run_id)
            import_log.open_job(engine, key=key, run_id=run_id, path=path, sha256=None)
            validated = validate_archive(engine, open_source(path), key, force=force)
            try:
                plans = plan_all(engine, validated)
                media = None
                if storage is not None:
                    from event_pipeline.media import prepare  # media imports the importer's types

                    served = {s.name: plans[s.name] for s in MEDIA_MODELS}
                    media = prepare(engine, storage, validated, served, run_id=run_id, policy=policy, progress=say)
                return publish_step(engine, validated, plans, run_id, media=media)
            finally:
                validated.close()
    except Exception as exc:
        record_failure(engine, key, run_id, exc)
        raise
    finally:
        release_frozen()  # a failure before publishing would leave them frozen in a long-lived worker
