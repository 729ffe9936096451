"""Removing what a failed import uploaded: never an object committed rows point at, nor one a live import claimed.

:func:`remove_uploads` deletes a failed import's uploads (a list of keys) and
releases its claims under the import key's lock (``claims.py``); a store that
fails is tried again with growing pauses for up to
``EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS``, then what is left is logged and stays
claimed, so the next import of the key sweeps it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.media import claims
from event_pipeline.media.referenced import referenced
from event_pipeline.media.storage import Storage, StorageError

if TYPE_CHECKING:
    from event_pipeline.media.media_plan import MediaPlan

log = logging.getLogger("event_pipeline.media")


def remove_after_failure(engine: Engine, plan: MediaPlan) -> None:
    """Remove this import's uploads after a failure while storing, and release its claims."""
    if plan.storage is not None:
        remove_uploads(plan.storage, sorted(set(plan.uploaded)), engine, plan)
    plan.uploaded = []


def remove_uploads(
    storage: Storage, keys: list[str], engine: Engine | None = None, plan: MediaPlan | None = None
) -> bool:
    """Delete a failed import's uploads and release its claims (``plan``'s run). Under the key's lock, and
    sparing what committed rows point at and what live imports of the key claimed; if the database is what
    failed, the uploads are deleted without that check (they are this run's own).

    The store is often what failed (an endpoint gone for a moment), so a failed delete is tried again, with
    growing pauses, for up to ``EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS`` (default 30); after that the keys left
    behind are logged, one warning naming them all, and stay claimed, so the next import of the key sweeps
    them."""
    deadline = time.monotonic() + settings.current().media_cleanup_seconds
    pause = 0.5
    while True:
        try:
            _remove_once(storage, keys, engine, plan)
            return True
        except StorageError as exc:
            if time.monotonic() + pause > deadline:
                log.warning(
                    "media: could not remove this import's %d uploads from %s: %s; left behind: %s",
                    len(keys),
                    storage.describe(),
                    exc,
                    ", ".join(keys),
                )
                return False
            log.info("media: could not remove this import's uploads yet (%s); trying again in %.1f s", exc, pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def _remove_once(storage: Storage, keys: list[str], engine: Engine | None, plan: MediaPlan | None) -> None:
    if engine is None or plan is None or not plan.run_id:
        if keys:
            storage.delete(keys)
        return
    try:
        with claims.locked(engine, plan.import_key) as conn:
            keep = referenced(conn, storage, plan.namespace, plan.event_id) if keys else set()
            keep |= claims.live_claims(conn, plan.import_key, plan.run_id) if keys else set()
            if keys:
                storage.delete([k for k in keys if k not in keep])
            claims.release(conn, plan.run_id)
    except StorageError:
        raise
    except Exception:  # noqa: BLE001 - the database may be what failed; these uploads are this run's own
        log.info("media: the database is unavailable; removing this import's uploads without checking claims")
        if keys:
            storage.delete(keys)
