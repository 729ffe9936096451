"""The ``media`` asset's output: the objects an import stores for its event and the column values pointing at them.

A :class:`MediaPlan` is made by :func:`~event_pipeline.media.prepare.prepare` and
applied by the import's publish step (``importer/publishing.py``), in this order:

- :meth:`MediaPlan.ensure_stored`: every object is there (e.g. after a re-execution);
- :meth:`MediaPlan.apply`: the stored URLs into the planned rows, as they are built;
- :meth:`MediaPlan.write`: rows whose media alone changed, in the import's transaction;
- then :meth:`MediaPlan.after_commit` (objects no longer referenced are deleted) or,
  if the import failed, :meth:`MediaPlan.discard` (the objects it uploaded are deleted).

Shapes: ``rows`` is ``model -> row id -> RowMedia``; ``objects`` is ``key ->
StoredObject``; ``counts`` holds the ``COUNTERS`` (objects, bytes) of the summary.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.media import claims
from event_pipeline.media.fetch import FetchError, FetchPolicy, fetch
from event_pipeline.media.objects import COUNTERS, RowMedia, StoredObject, failed
from event_pipeline.media.referenced import referenced
from event_pipeline.media.removal import remove_uploads
from event_pipeline.media.spool import ArchiveReader, digest, new_spool
from event_pipeline.media.storage import Storage, StorageError, event_prefix
from event_pipeline.model.catalog import BY_NAME
from event_pipeline.model.schema import TABLES
from event_pipeline.problems import Problem

if TYPE_CHECKING:
    from event_pipeline.importer import ValidatedArchive
    from event_pipeline.plan.diff import Amend, ModelPlan

log = logging.getLogger("event_pipeline.media")

CHUNK = 5_000  # rows per bulk update


@dataclass
class MediaPlan:
    """The ``media`` asset's output: the objects stored for the event and the column values pointing at them."""

    event_id: int
    storage: Storage | None = None
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    archive_path: str = ""
    archive_sha256: str = ""
    namespace: str = ""  # the database's media namespace
    import_key: str = ""
    run_id: str = ""  # the run whose claims protect these objects
    rows: dict[str, dict[int, RowMedia]] = field(default_factory=dict)  # model -> row id -> media
    changed: dict[str, set[int]] = field(default_factory=dict)  # rows whose stored media differ from the database's
    objects: dict[str, StoredObject] = field(default_factory=dict)  # every object the rows point at, by key
    uploaded: list[str] = field(default_factory=list)  # keys this import created
    previous: set[str] = field(default_factory=set)  # keys the event's rows pointed at before
    warnings: list[Problem] = field(default_factory=list)  # fetch problems (validation gives those about files)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    where: dict[str, Problem] = field(default_factory=dict)  # key -> the first field naming it (for errors)

    # -- what the import_result step calls ---------------------------------

    def ensure_stored(self, engine: Engine, run_id: str, log_: Callable[[str], None] | None = None) -> None:
        """Claim the objects for ``run_id`` (a re-execution is a new run) and upload again whatever is missing
        (a re-execution after a failed publish removed it). ImportFailed if an object cannot be stored."""
        if not self.objects or self.storage is None:
            return
        self.run_id = run_id
        claims.claim(engine, self.import_key, run_id, set(self.objects) | self.previous)
        listing = self.storage.list(event_prefix(self.namespace, self.event_id))
        missing = [o for k, o in self.objects.items() if listing.get(k) != o.size]
        if not missing:
            return
        if log_:
            log_(f"media: {len(missing)} stored objects missing; uploading them again")
        with ArchiveReader(self.archive_path, self.archive_sha256) as reader:
            for obj in missing:
                with new_spool() as spool:
                    if obj.member is not None:
                        sha256, size = reader.copy(obj.member, spool, self.where.get(obj.key))
                    else:
                        try:
                            fetch(obj.url or "", self.policy, spool)
                        except FetchError as exc:
                            raise failed(self.where.get(obj.key), f"cannot fetch {obj.url} again: {exc}") from exc
                        sha256, size = digest(spool)
                    if sha256 != obj.sha256:
                        source = obj.member or obj.url
                        message = f"media {source!r} changed since it was stored; import again"
                        raise failed(self.where.get(obj.key), message)
                    spool.seek(0)
                    try:
                        self.storage.put(obj.key, spool, size, sha256, obj.content_type)
                    except StorageError as exc:
                        raise failed(self.where.get(obj.key), str(exc)) from exc
                self.uploaded.append(obj.key)
                self.counts["uploaded"] += 1
                self.counts["bytes_uploaded"] += obj.size

    def apply(self, plans: dict[str, ModelPlan]) -> tuple[dict[str, Amend], dict[str, list[dict[str, Any]]]]:
        """Per media model, the amendment that puts the stored URLs into each of its planned rows as they
        are built (``plan/diff.planned_rows``), and the updates of rows whose media alone changed (rows the
        plans do not write). Amending a row twice gives the same row."""
        amend: dict[str, Amend] = {}
        pending: dict[str, list[dict[str, Any]]] = {}
        for name, rows in self.rows.items():
            amend[name] = functools.partial(_amend, rows)
            written = plans[name].written()
            columns = [m.column for m in BY_NAME[name].media]
            updates = [
                {"id": row_id, **{c: rows[row_id].values.get(c) for c in columns}, "extra": rows[row_id].full_extra()}
                for row_id in sorted(self.changed.get(name, set()) - written)
            ]
            if updates:
                pending[name] = updates
        return amend, pending

    def write(self, conn: Connection, pending: dict[str, list[dict[str, Any]]]) -> None:
        """Bulk updates of the rows whose media alone changed, inside the import's transaction."""
        now = datetime.now(UTC)
        for name, updates in pending.items():
            table = TABLES[name]
            columns = [m.column for m in BY_NAME[name].media] + ["extra", "updated_at"]
            statement = (
                table.update()
                .where(table.c.id == sa.bindparam("_id"))
                .values({c: sa.bindparam(f"_{c}") for c in columns})
            )
            for start in range(0, len(updates), CHUNK):
                chunk = updates[start : start + CHUNK]
                conn.execute(statement, [{f"_{k}": v for k, v in u.items()} | {"_updated_at": now} for u in chunk])

    def after_commit(self, engine: Engine) -> None:
        """Delete the objects the event's rows no longer point at, sparing those a live import of the key
        relies on, and release this run's claims. The import has committed: a failure here only leaves
        unreferenced objects behind (still claimed, so the next import of the key sweeps them); it is
        logged, not raised."""
        if self.storage is None or not self.run_id:
            return
        stale = (self.previous | set(self.uploaded)) - set(self.objects)
        try:
            with claims.locked(engine, self.import_key) as conn:
                if stale:
                    keep = referenced(conn, self.storage, self.namespace, self.event_id)
                    keep |= claims.live_claims(conn, self.import_key, self.run_id)
                    self.counts["deleted"] += self.storage.delete(sorted(stale - keep))
                claims.release(conn, self.run_id)
        except Exception as exc:  # noqa: BLE001 - committed already; never fail the import now
            log.warning("media: %s; %d unreferenced objects left in %s", exc, len(stale), self.storage.describe())

    def discard(self, engine: Engine | None = None) -> None:
        """The import failed: delete the objects it uploaded (never one committed rows point at, nor one a
        live import of the key relies on) and release its claims."""
        if self.storage is None:
            return
        remove_uploads(self.storage, sorted(set(self.uploaded)), engine, self)
        self.uploaded = []

    def replan(self, engine: Engine, validated: ValidatedArchive, plans: dict[str, ModelPlan]) -> MediaPlan:
        """The plans were made again (a concurrent import committed first): store for the new ones."""
        from event_pipeline.media.prepare import prepare  # prepare makes MediaPlans: imported here, not at the top

        self.discard(engine)
        if self.storage is None:
            return MediaPlan(self.event_id)
        return prepare(engine, self.storage, validated, plans, run_id=self.run_id, policy=self.policy)

    def summary(self) -> dict[str, Any]:
        """What the import reports: storage, objects and their bytes, the ``COUNTERS``, warnings."""
        return {
            "storage": self.storage.describe() if self.storage else None,
            "objects": len(self.objects),
            "bytes": sum(o.size for o in self.objects.values()),
            **self.counts,
            "warnings": len(self.warnings),
        }


def _amend(media_rows: dict[int, RowMedia], row: dict[str, Any]) -> None:
    """A planned row with its stored media: the columns' new values, the archive's in ``extra``."""
    media = media_rows.get(row["id"])
    if media is not None:
        row.update(media.values)
        row["extra"] = media.full_extra(row["extra"])
