"""An import's media: which files to store, storing them, and the URLs the rows get.

:func:`prepare` (the ``media`` asset) goes over every media column of the
catalog (``ModelSpec.media``) for every record of the archive:

- an archive path (``/images/speakers/x.jpg``, ``images/x.jpg``, either Unicode
  normalisation form) names a zip member that validation has already found,
  read whole and hashed (``check.py``, which also gives the warnings about
  paths). Its bytes are stored content-addressed within the event,
  ``db-<namespace>/events/{event_id}/{sha256}{.ext}``: one member named by
  200 records is one object, stored once; the key changes exactly when the
  bytes do, so a stored object is never overwritten with other bytes, an
  unchanged file is never uploaded again (one listing of the event's folder
  tells what is there), and the rows committed before this import keep
  pointing at objects that exist until this import commits. ``<namespace>``
  is the database's own (``database_identity``), so databases sharing a
  folder or bucket never touch each other's objects; ``.ext`` is kept only for
  allow-listed types (``storage.served_type``);
- a path the zip lacks: the column is left empty (validation warned);
- a URL is kept as the column's value and not requested, unless fetching is
  enabled for its host (``fetch.py``), in which case the fetched bytes are
  stored like a file of the zip;
- in every case where the column's value differs from the archive's, the
  archive's value is kept in the row's ``extra["archive_paths"][column]``.

The bytes of the distinct objects an import stores are limited by
``EVENT_PIPELINE_MAX_MEDIA_BYTES`` (validation checks the archive's files,
the import adds fetched ones as they arrive). Before storing anything the
import claims the objects it relies on (``claims.py``), which first sweeps
what killed imports of the same key left behind.

The resulting :class:`MediaPlan` is applied by ``pipeline.publish_step``:
:meth:`MediaPlan.ensure_stored` (every object is there, e.g. after a
re-execution), :meth:`MediaPlan.apply` (stored URLs into the planned rows),
:meth:`MediaPlan.write` (rows whose media alone changed, in the same
transaction), then :meth:`MediaPlan.after_commit` (objects no longer
referenced are deleted) or, if the import failed, :meth:`MediaPlan.discard`
(the objects this import uploaded are deleted).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline import settings
from event_pipeline.media import claims
from event_pipeline.media.check import MemberFinder, limit_message, max_media_bytes, media_records
from event_pipeline.media.fetch import FetchError, FetchPolicy, fetch, is_url
from event_pipeline.media.storage import Storage, StorageError, event_prefix, kill_point, served_type
from event_pipeline.model.catalog import BY_NAME, MEDIA_MODELS, Media, ModelSpec
from event_pipeline.model.schema import TABLES
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.read.archive import ZIP_ERRORS, close_copy, snapshot

log = logging.getLogger("event_pipeline.media")

ARCHIVE_PATHS = "archive_paths"  # the key of a row's ``extra`` that keeps the archive's values
SPOOL_MEMORY = 8 << 20  # bytes of one file kept in memory before it spills to a temporary file
CHUNK = 5_000

if TYPE_CHECKING:
    from event_pipeline.importer import ValidatedArchive
    from event_pipeline.plan.diff import ModelPlan


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
    content_type: str  # as served: an allow-listed type, else application/octet-stream
    member: str | None = None  # the zip member the bytes come from
    url: str | None = None  # or the URL they were fetched from


@dataclass
class RowMedia:
    """One row's media columns as they are to be stored."""

    source_id: str
    values: dict[str, str | None]  # column -> stored URL, kept URL or None
    archive_paths: dict[str, str]  # column -> the archive's value, where it differs from the column's
    extra: dict[str, Any]  # the record's extra, before ``archive_paths`` is added

    def full_extra(self) -> dict[str, Any]:
        if not self.archive_paths:
            return self.extra
        return {**self.extra, ARCHIVE_PATHS: dict(self.archive_paths)}


@dataclass
class _Item:
    """A URL to fetch for one column of one row."""

    spec: ModelSpec
    media: Media
    row_id: int
    row: RowMedia
    raw: str
    url: str


COUNTERS = ("uploaded", "bytes_uploaded", "reused", "fetched", "kept_urls", "missing", "deleted", "swept")


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
        with _ArchiveReader(self.archive_path, self.archive_sha256) as reader:
            for obj in missing:
                with _spool() as spool:
                    if obj.member is not None:
                        sha256, size = reader.copy(obj.member, spool, self.where.get(obj.key))
                    else:
                        try:
                            fetch(obj.url or "", self.policy, spool)
                        except FetchError as exc:
                            raise _failed(self.where.get(obj.key), f"cannot fetch {obj.url} again: {exc}") from exc
                        sha256, size = _digest(spool)
                    if sha256 != obj.sha256:
                        source = obj.member or obj.url
                        message = f"media {source!r} changed since it was stored; import again"
                        raise _failed(self.where.get(obj.key), message)
                    spool.seek(0)
                    try:
                        self.storage.put(obj.key, spool, size, sha256, obj.content_type)
                    except StorageError as exc:
                        raise _failed(self.where.get(obj.key), str(exc)) from exc
                self.uploaded.append(obj.key)
                self.counts["uploaded"] += 1
                self.counts["bytes_uploaded"] += obj.size

    def apply(self, plans: dict[str, ModelPlan]) -> tuple[dict[str, ModelPlan], dict[str, list[dict[str, Any]]]]:
        """Put the stored URLs into the planned rows (in place: these plans are about to be written, and a
        copy of every row of 50 000 speakers was the peak of an import's memory), and return the updates
        of rows whose media alone changed. Applying twice gives the same rows."""
        pending: dict[str, list[dict[str, Any]]] = {}
        for name, rows in self.rows.items():
            plan = plans[name]
            for row in (*plan.inserts, *plan.updates):
                media = rows.get(row["id"])
                if media is not None:
                    row.update(media.values)
                    row["extra"] = media.full_extra()
            written = {row["id"] for row in plan.inserts} | {row["id"] for row in plan.updates}
            columns = [m.column for m in BY_NAME[name].media]
            updates = [
                {"id": row_id, **{c: rows[row_id].values.get(c) for c in columns}, "extra": rows[row_id].full_extra()}
                for row_id in sorted(self.changed.get(name, set()) - written)
            ]
            if updates:
                pending[name] = updates
        return plans, pending

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
                    keep = _referenced(conn, self.storage, self.namespace, self.event_id)
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
        self.discard(engine)
        if self.storage is None:
            return MediaPlan(self.event_id)
        return prepare(engine, self.storage, validated, plans, run_id=self.run_id, policy=self.policy)

    def summary(self) -> dict[str, Any]:
        return {
            "storage": self.storage.describe() if self.storage else None,
            "objects": len(self.objects),
            "bytes": sum(o.size for o in self.objects.values()),
            **self.counts,
            "warnings": len(self.warnings),
        }


# -- planning and storing -------------------------------------------------


def prepare(
    engine: Engine,
    storage: Storage,
    validated: ValidatedArchive,
    plans: dict[str, ModelPlan],
    *,
    run_id: str,
    policy: FetchPolicy | None = None,
    progress: Callable[[str], None] | None = None,
    concurrency: int | None = None,
) -> MediaPlan:
    """Store the archive's media for ``plans`` and return the plan of the columns. ``run_id`` claims the
    objects (see ``claims.py``); first, what killed imports of the same key left is swept. Raises
    ImportFailed (after removing what it uploaded) when an object cannot be stored or the media exceed
    ``EVENT_PIPELINE_MAX_MEDIA_BYTES``."""
    policy = policy or FetchPolicy()
    event_id = validated.target.event_id
    namespace = claims.media_namespace(engine)
    plan = MediaPlan(event_id, storage, policy, validated.path, validated.sha256, namespace, validated.key, run_id)
    try:
        plan.counts["swept"] = claims.sweep(engine, storage, validated.key, run_id, _referencing(storage))
    except StorageError as exc:
        raise _failed(None, f"cannot sweep what an interrupted import left: {exc}") from exc
    if validated.unchanged or validated.normalised is None:
        return plan  # nothing changed: the stored media are the ones of the last import
    finder = MemberFinder(validated.media or {})
    items: list[_Item] = []
    current_by_model: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}
    for spec in MEDIA_MODELS:
        current = {} if validated.target.is_new else _current(engine, spec, event_id)
        for _key, (_id, values, _paths) in current.items():
            plan.previous |= _keys_of(storage, namespace, event_id, values.values())
        model_plan = plans[spec.name]
        planned = {row["source_key"]: row["id"] for row in [*model_plan.inserts, *model_plan.updates]}
        rows: dict[int, RowMedia] = {}
        current_by_model[spec.name] = {}
        for record in media_records(validated.normalised, spec):
            row_id = planned.get(record.source_key)
            if row_id is None and record.source_key in current:
                row_id = current[record.source_key][0]
            if row_id is None:
                continue
            row = RowMedia(record.source_id, {}, {}, record.extra)
            for media in spec.media:
                item = _plan_value(plan, finder, validated, spec, media, row_id, row, record.values.get(media.column))
                if item is not None:
                    items.append(item)
            rows[row_id] = row
            if record.source_key in current:
                _id, values, paths = current[record.source_key]
                current_by_model[spec.name][row_id] = (values, paths)
        plan.rows[spec.name] = rows
    _store(engine, plan, items, progress, concurrency)
    kill_point("media-stored")  # tests: kill -9 between the uploads and the commit
    # Keep only the rows with something to write; note those whose stored media changed.
    for name, rows in plan.rows.items():
        current = current_by_model[name]
        changed = set()
        for row_id, row in rows.items():
            if row_id in current:
                values, paths = current[row_id]
                desired = row.full_extra().get(ARCHIVE_PATHS) or {}
                if values != row.values or (paths or {}) != desired:
                    changed.add(row_id)
        plan.changed[name] = changed
        plan.rows[name] = {
            i: r for i, r in rows.items() if i in changed or r.archive_paths or any(v for v in r.values.values())
        }
    return plan


def _plan_value(
    plan: MediaPlan,
    finder: MemberFinder,
    validated: ValidatedArchive,
    spec: ModelSpec,
    media: Media,
    row_id: int,
    row: RowMedia,
    raw: Any,
) -> _Item | None:
    """One column of one record: the stored object's URL for a file of the zip, a URL to fetch (returned),
    or the value kept or emptied."""
    row.values[media.column] = raw
    if not isinstance(raw, str) or not raw.strip():
        return None
    where = Problem(spec.files[0], row.source_id, media.column, raw)
    if is_url(raw):
        if plan.policy.allows(raw):
            return _Item(spec, media, row_id, row, raw, url=raw.strip())
        plan.counts["kept_urls"] += 1
        return None
    member, _how = finder.find(raw)  # validation warned about repairs and missing files
    if member is None:
        plan.counts["missing"] += 1
        row.values[media.column] = None
        row.archive_paths[media.column] = raw
        return None
    digest = (validated.media_digests or {}).get(member)
    if digest is None:  # validation reads every member named; a plan from another version of this code
        raise _failed(where, f"media file {raw!r} was not checked when the archive was validated; import it again")
    suffix, content_type = served_type(member)
    key = object_key(plan.namespace, plan.event_id, digest.sha256, suffix)
    plan.objects.setdefault(key, StoredObject(key, digest.sha256, digest.size, content_type, member=member))
    plan.where.setdefault(key, where)
    assert plan.storage is not None
    row.values[media.column] = plan.storage.url(key)
    row.archive_paths[media.column] = raw
    return None


def _store(
    engine: Engine,
    plan: MediaPlan,
    items: list[_Item],
    progress: Callable[[str], None] | None,
    concurrency: int | None,
) -> None:
    """Claim the plan's objects, upload those not stored yet, fetch and store ``items``; on any failure
    remove what was uploaded and raise ImportFailed.

    The main thread reads (zip members are read one at a time) and hashes; uploads
    run on a few threads, with a bounded number of files waiting for them.
    """
    storage = plan.storage
    assert storage is not None
    limit = max_media_bytes()
    total = sum(o.size for o in plan.objects.values())
    if total > limit:  # validation refused this already; the setting may differ in this process
        raise _failed(next(iter(plan.where.values()), None), limit_message(total, limit))
    # Claimed before the listing (no removal can interleave), the previous objects too: a kill after the
    # commit leaves those the next import of the key then finds unreferenced.
    claims.claim(engine, plan.import_key, plan.run_id, set(plan.objects) | plan.previous)
    if not plan.objects and not items:
        return
    try:
        listing = storage.list(event_prefix(plan.namespace, plan.event_id))
    except StorageError as exc:
        _remove(engine, plan)
        raise _failed(next(iter(plan.where.values()), None), str(exc)) from exc
    to_upload = []
    for key, obj in plan.objects.items():
        if listing.get(key) == obj.size:
            plan.counts["reused"] += 1
        else:
            to_upload.append(obj)
    steps = len(to_upload) + len(items)
    step = 1 if steps <= 50 else max(1, steps // 20)
    workers = max(1, concurrency or settings.current().media_concurrency)
    in_flight: dict[Future, StoredObject] = {}
    errors: list[ImportFailed] = []

    def settle(futures: Iterable[Future]) -> None:
        for future in futures:
            obj = in_flight.pop(future)
            exc = future.exception()
            if exc is None:
                plan.uploaded.append(obj.key)
                plan.counts["uploaded"] += 1
                plan.counts["bytes_uploaded"] += obj.size
            else:
                where = plan.where.get(obj.key)
                source = where.message if where else obj.member or obj.url
                errors.append(_failed(where, f"cannot store media {source!r}: {exc}"))

    def submit(obj: StoredObject, spool: IO[bytes]) -> None:
        in_flight[pool.submit(_upload, storage, obj, spool)] = obj
        if len(in_flight) >= 2 * workers:
            settle(wait(list(in_flight), return_when=FIRST_COMPLETED).done)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-upload")
    n = 0
    try:
        with _ArchiveReader(plan.archive_path, plan.archive_sha256) as reader:
            for obj in to_upload:
                if errors:
                    break
                spool = _spool()
                try:
                    sha256, _size = reader.copy(obj.member or "", spool, plan.where.get(obj.key))
                    if sha256 != obj.sha256:
                        raise _failed(plan.where.get(obj.key), f"media file {obj.member!r} changed since validation")
                except BaseException:
                    spool.close()
                    raise
                spool.seek(0)
                submit(obj, spool)
                n += 1
                if progress and (n % step == 0 or n == steps):
                    progress(f"media {n}/{steps}")
            for item in items:
                if errors:
                    break
                fetched = _fetch(plan, item)
                if fetched is not None:
                    obj, spool = fetched
                    if obj.key in plan.objects:
                        spool.close()
                    else:
                        plan.objects[obj.key] = obj
                        total += obj.size
                        if total > limit:
                            spool.close()
                            raise _failed(plan.where[obj.key], limit_message(total, limit))
                        claims.claim(engine, plan.import_key, plan.run_id, {obj.key})
                        if listing.get(obj.key) == obj.size:
                            plan.counts["reused"] += 1
                            spool.close()
                        else:
                            submit(obj, spool)
                n += 1
                if progress and (n % step == 0 or n == steps):
                    progress(f"media {n}/{steps}")
    except ImportFailed as exc:
        errors.append(exc)
    except BaseException:
        errors.append(_failed(None, "interrupted while storing media"))
        raise
    finally:
        settle(wait(list(in_flight)).done)
        pool.shutdown(wait=True)
        if errors:
            _remove(engine, plan)
    if errors:
        raise errors[0]


def _fetch(plan: MediaPlan, item: _Item) -> tuple[StoredObject, IO[bytes]] | None:
    """The URL's bytes, spooled and hashed, and the object to store them as (None: the fetch failed, the URL
    is kept with a warning). Sets the row's value."""
    spool = _spool()
    try:
        try:
            declared = fetch(item.url, plan.policy, spool)
        except FetchError as exc:
            plan.warnings.append(Problem(item.spec.files[0], item.row.source_id, item.media.column, f"{exc}; URL kept"))
            spool.close()
            return None
        sha256, size = _digest(spool)
        plan.counts["fetched"] += 1
        suffix, content_type = served_type(urlsplit(item.url).path, declared)
        key = object_key(plan.namespace, plan.event_id, sha256, suffix)
        obj = StoredObject(key, sha256, size, content_type, url=item.url)
        plan.where.setdefault(key, Problem(item.spec.files[0], item.row.source_id, item.media.column, item.raw))
    except BaseException:
        spool.close()
        raise
    assert plan.storage is not None
    item.row.values[item.media.column] = plan.storage.url(key)
    item.row.archive_paths[item.media.column] = item.raw
    spool.seek(0)
    return obj, spool


def _upload(storage: Storage, obj: StoredObject, spool: IO[bytes]) -> None:
    try:
        storage.put(obj.key, spool, obj.size, obj.sha256, obj.content_type)
    finally:
        spool.close()


def _remove(engine: Engine, plan: MediaPlan) -> None:
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
            keep = _referenced(conn, storage, plan.namespace, plan.event_id) if keys else set()
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


def object_key(namespace: str, event_id: int, sha256: str, suffix: str) -> str:
    """``db-<namespace>/events/{event_id}/{sha256}{suffix}``: content-addressed within the event."""
    return f"{event_prefix(namespace, event_id)}{sha256}{suffix}"


def _failed(where: Problem | None, message: str) -> ImportFailed:
    """An ImportFailed located at ``where`` (a Problem naming file, record and field; its message unused)."""
    if where is None:
        return ImportFailed([Problem(None, None, None, message)])
    return ImportFailed([Problem(where.file, where.record_id, where.field, message)])


# -- the archive, the database --------------------------------------------


class _ArchiveReader:
    """The zip, opened on first use after checking it is still the archive that was validated."""

    def __init__(self, path: str, sha256: str):
        self.path, self.sha256 = path, sha256
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> _ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                copy, sha256 = snapshot(Path(self.path))  # hashed and read from one private copy
            except OSError as exc:
                raise _failed(None, f"cannot read the archive's media: {exc}") from exc
            if sha256 != self.sha256:
                copy.close()
                raise _failed(None, f"{self.path} changed since it was validated; import it again")
            self._zip = zipfile.ZipFile(copy)
        return self._zip

    def copy(self, member: str, sink: IO[bytes], where: Problem | None = None) -> tuple[str, int]:
        """Copy a member's bytes to ``sink``; returns (sha256, size). ImportFailed located at ``where``."""
        digest, size = hashlib.sha256(), 0
        try:
            with self._open().open(member) as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
        except ZIP_ERRORS as exc:
            raise _failed(where, f"cannot read media file {member!r} from the zip: {exc}") from exc
        return digest.hexdigest(), size

    def close(self) -> None:
        if self._zip is not None:
            close_copy(self._zip)
            self._zip = None


def _current(
    engine: Engine | Connection, spec: ModelSpec, event_id: int
) -> dict[str, tuple[int, dict[str, Any], dict]]:
    """The event's rows of one model: source key -> (id, media column values, extra's archive paths)."""
    table = TABLES[spec.name]
    owner = table.c[spec.owner_column]
    columns = [m.column for m in spec.media]
    # Only extra's archive paths, not the whole of it: a fraction of the bytes to read and decode.
    paths_of = table.c.extra[ARCHIVE_PATHS].label("paths")
    query = sa.select(table.c.source_key, table.c.id, paths_of, *[table.c[c] for c in columns]).where(owner == event_id)
    found = {}
    with contextlib.nullcontext(engine) if isinstance(engine, Connection) else engine.connect() as conn:
        for row in conn.execute(query):
            paths = row.paths if isinstance(row.paths, dict) else {}
            found[row.source_key] = (row.id, {c: row._mapping[c] for c in columns}, paths)
    return found


def _keys_of(storage: Storage, namespace: str, event_id: int, values: Iterable[Any]) -> set[str]:
    """The keys of this database's objects of this event among column values (other URLs are not ours)."""
    prefix = event_prefix(namespace, event_id)
    keys = set()
    for value in values:
        if isinstance(value, str):
            key = storage.key_for_url(value)
            if key and key.startswith(prefix):
                keys.add(key)
    return keys


def _referenced(conn: Engine | Connection, storage: Storage, namespace: str, event_id: int) -> set[str]:
    keys: set[str] = set()
    for spec in MEDIA_MODELS:
        for _id, values, _paths in _current(conn, spec, event_id).values():
            keys |= _keys_of(storage, namespace, event_id, values.values())
    return keys


def _referencing(storage: Storage) -> Callable[[Connection, str, int], set[str]]:
    return lambda conn, namespace, event_id: _referenced(conn, storage, namespace, event_id)


def referenced_keys(engine: Engine, storage: Storage, event_id: int) -> set[str]:
    """The stored objects the event's rows point at now."""
    return _referenced(engine, storage, claims.media_namespace(engine), event_id)


# -- small helpers ---------------------------------------------------------


def _spool() -> tempfile.SpooledTemporaryFile:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


def _digest(spool: IO[bytes]) -> tuple[str, int]:
    spool.seek(0)
    digest = hashlib.file_digest(spool, "sha256")
    return digest.hexdigest(), spool.seek(0, os.SEEK_END)  # the size, however file_digest read it
