"""Storing a plan's objects: zip members read and hashed, allowed URLs fetched, uploads on a few threads.

:func:`store` takes a :class:`~event_pipeline.media.media_plan.MediaPlan` whose
``objects`` name the zip members to store and a list of
:class:`~event_pipeline.media.objects.UrlToFetch`. It claims the objects, lists
what the event's folder already holds (an object of the same key and size is
reused, never uploaded again), then:

- the main thread reads each member to upload (one at a time: a zip is read
  sequentially) into a spool, checks its sha256 against validation's, and hands
  it to a pool of ``EVENT_PIPELINE_MEDIA_CONCURRENCY`` upload threads (default 8),
  with at most twice that many spools waiting;
- each URL is fetched into a spool (``fetch.py``; a failed fetch keeps the URL,
  with a warning), hashed, keyed like a member, and uploaded the same way; the
  bytes of the distinct objects stay within ``EVENT_PIPELINE_MAX_MEDIA_BYTES``.

On any failure every upload of the import is removed (``removal.py``) and the
first error raised as ImportFailed, located at the field naming the media.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.media import claims
from event_pipeline.media.check import limit_message, max_media_bytes
from event_pipeline.media.fetch import FetchError, fetch
from event_pipeline.media.objects import StoredObject, UrlToFetch, failed, object_key
from event_pipeline.media.removal import remove_after_failure
from event_pipeline.media.served_types import served_type
from event_pipeline.media.spool import ArchiveReader, digest, new_spool
from event_pipeline.media.storage import Storage, StorageError, event_prefix
from event_pipeline.problems import ImportFailed, Problem

if TYPE_CHECKING:
    from event_pipeline.media.media_plan import MediaPlan


def store(
    engine: Engine,
    plan: MediaPlan,
    items: list[UrlToFetch],
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
        raise failed(next(iter(plan.where.values()), None), limit_message(total, limit))
    # Claimed before the listing (no removal can interleave), the previous objects too: a kill after the
    # commit leaves those the next import of the key then finds unreferenced.
    claims.claim(engine, plan.import_key, plan.run_id, set(plan.objects) | plan.previous)
    if not plan.objects and not items:
        return
    try:
        listing = storage.list(event_prefix(plan.namespace, plan.event_id))
    except StorageError as exc:
        remove_after_failure(engine, plan)
        raise failed(next(iter(plan.where.values()), None), str(exc)) from exc
    to_upload = []
    for key, obj in plan.objects.items():
        if listing.get(key) == obj.size:
            plan.counts["reused"] += 1
        else:
            to_upload.append(obj)
    workers = max(1, concurrency or settings.current().media_concurrency)
    transfer = _Transfer(engine, plan, storage, listing, total, limit, progress, len(to_upload) + len(items))
    transfer.run(to_upload, items, workers)


class _Transfer:
    """One :func:`store` call's uploads in flight, its errors and its progress."""

    def __init__(
        self,
        engine: Engine,
        plan: MediaPlan,
        storage: Storage,
        listing: dict[str, int],
        total: int,
        limit: int,
        progress: Callable[[str], None] | None,
        steps: int,
    ):
        self.engine, self.plan, self.storage, self.listing = engine, plan, storage, listing
        self.total, self.limit = total, limit  # bytes of the distinct objects so far, and their bound
        self.progress, self.steps, self.done = progress, steps, 0
        self.step = 1 if steps <= 50 else max(1, steps // 20)
        self.in_flight: dict[Future, StoredObject] = {}
        self.errors: list[ImportFailed] = []
        self.workers = 1
        self.pool: ThreadPoolExecutor | None = None

    def run(self, to_upload: list[StoredObject], items: list[UrlToFetch], workers: int) -> None:
        """Upload the members ``to_upload``, then fetch and store ``items``; ImportFailed on the first error."""
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-upload")
        try:
            with ArchiveReader(self.plan.archive_path, self.plan.archive_sha256) as reader:
                self._members(reader, to_upload)
                self._urls(items)
        except ImportFailed as exc:
            self.errors.append(exc)
        except BaseException:
            self.errors.append(failed(None, "interrupted while storing media"))
            raise
        finally:
            self._settle(wait(list(self.in_flight)).done)
            self.pool.shutdown(wait=True)
            if self.errors:
                remove_after_failure(self.engine, self.plan)
        if self.errors:
            raise self.errors[0]

    def _members(self, reader: ArchiveReader, to_upload: list[StoredObject]) -> None:
        for obj in to_upload:
            if self.errors:
                return
            spool = new_spool()
            try:
                sha256, _size = reader.copy(obj.member or "", spool, self.plan.where.get(obj.key))
                if sha256 != obj.sha256:
                    raise failed(self.plan.where.get(obj.key), f"media file {obj.member!r} changed since validation")
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            self._submit(obj, spool)
            self._advance()

    def _urls(self, items: list[UrlToFetch]) -> None:
        for item in items:
            if self.errors:
                return
            fetched = fetch_url(self.plan, item)
            if fetched is not None:
                self._store_fetched(*fetched)
            self._advance()

    def _store_fetched(self, obj: StoredObject, spool: IO[bytes]) -> None:
        plan = self.plan
        if obj.key in plan.objects:
            spool.close()
            return
        plan.objects[obj.key] = obj
        self.total += obj.size
        if self.total > self.limit:
            spool.close()
            raise failed(plan.where[obj.key], limit_message(self.total, self.limit))
        claims.claim(self.engine, plan.import_key, plan.run_id, {obj.key})
        if self.listing.get(obj.key) == obj.size:
            plan.counts["reused"] += 1
            spool.close()
        else:
            self._submit(obj, spool)

    def _advance(self) -> None:
        self.done += 1
        if self.progress and (self.done % self.step == 0 or self.done == self.steps):
            self.progress(f"media {self.done}/{self.steps}")

    def _submit(self, obj: StoredObject, spool: IO[bytes]) -> None:
        assert self.pool is not None
        self.in_flight[self.pool.submit(_upload, self.storage, obj, spool)] = obj
        if len(self.in_flight) >= 2 * self.workers:
            self._settle(wait(list(self.in_flight), return_when=FIRST_COMPLETED).done)

    def _settle(self, futures: Iterable[Future]) -> None:
        plan = self.plan
        for future in futures:
            obj = self.in_flight.pop(future)
            exc = future.exception()
            if exc is None:
                plan.uploaded.append(obj.key)
                plan.counts["uploaded"] += 1
                plan.counts["bytes_uploaded"] += obj.size
            else:
                where = plan.where.get(obj.key)
                source = where.message if where else obj.member or obj.url
                self.errors.append(failed(where, f"cannot store media {source!r}: {exc}"))


def fetch_url(plan: MediaPlan, item: UrlToFetch) -> tuple[StoredObject, IO[bytes]] | None:
    """The URL's bytes, spooled and hashed, and the object to store them as (None: the fetch failed, the URL
    is kept with a warning). Sets the row's value."""
    spool = new_spool()
    try:
        try:
            declared = fetch(item.url, plan.policy, spool)
        except FetchError as exc:
            plan.warnings.append(Problem(item.spec.files[0], item.row.source_id, item.media.column, f"{exc}; URL kept"))
            spool.close()
            return None
        sha256, size = digest(spool)
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
