"""An import's media: which files to store, storing them, and the URLs the rows get.

:func:`prepare` (the ``media`` asset) goes over every media column of the
catalog (``ModelSpec.media``) for every record of the archive:

- an archive path (``/images/speakers/x.jpg``, ``images/x.jpg``, either Unicode
  normalisation form) is looked up among the zip's members; its bytes are
  copied to storage under the reference layout and the sha256 of the bytes,
  ``events/{event_id}/speakers/{speaker_id}/photo/{sha256}.jpg``, and the
  column gets the stored URL. The key changes exactly when the bytes do, so a
  stored object is never overwritten with other bytes, an unchanged file is
  never uploaded again (one listing of the event's folder tells what is
  there), and the rows committed before this import keep pointing at objects
  that exist until this import commits;
- a path the zip lacks: a warning naming the record and the path, the column
  left empty;
- a URL is kept as the column's value and not requested, unless fetching is
  enabled for its host (``fetch.py``), in which case the fetched bytes are
  stored like a file of the zip;
- in every case where the column's value differs from the archive's, the
  archive's value is kept in the row's ``extra["archive_paths"][column]``.

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
import mimetypes
import os
import posixpath
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.archive import ZIP_ERRORS, media_key, snapshot
from event_pipeline.catalog import BY_NAME, EVENT, MEDIA_MODELS, Media, ModelSpec
from event_pipeline.media.fetch import FetchError, FetchPolicy, fetch, is_url
from event_pipeline.media.storage import Storage, StorageError, event_prefix
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.schema import TABLES

log = logging.getLogger("event_pipeline.media")

ARCHIVE_PATHS = "archive_paths"  # the key of a row's ``extra`` that keeps the archive's values
CONCURRENCY_ENV = "EVENT_PIPELINE_MEDIA_CONCURRENCY"
CLEANUP_ENV = "EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS"
CLEANUP_SECONDS = 30.0  # how long a failed import keeps trying to remove its uploads
SPOOL_MEMORY = 8 << 20  # bytes of one file kept in memory before it spills to a temporary file
CHUNK = 5_000

if TYPE_CHECKING:
    from event_pipeline.pipeline import ValidatedArchive
    from event_pipeline.plan import ModelPlan


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
    content_type: str | None
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
    spec: ModelSpec
    media: Media
    row_id: int
    row: RowMedia
    raw: str
    member: str | None = None
    url: str | None = None


COUNTERS = ("uploaded", "bytes_uploaded", "reused", "fetched", "kept_urls", "missing", "deleted")


@dataclass
class MediaPlan:
    """The ``media`` asset's output: the objects stored for the event and the column values pointing at them."""

    event_id: int
    storage: Storage | None = None
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    archive_path: str = ""
    archive_sha256: str = ""
    rows: dict[str, dict[int, RowMedia]] = field(default_factory=dict)  # model -> row id -> media
    changed: dict[str, set[int]] = field(default_factory=dict)  # rows whose stored media differ from the database's
    objects: dict[str, StoredObject] = field(default_factory=dict)  # every object the rows point at, by key
    uploaded: list[str] = field(default_factory=list)  # keys this import created
    previous: set[str] = field(default_factory=set)  # keys the event's rows pointed at before
    warnings: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    # -- what the import_result step calls ---------------------------------

    def ensure_stored(self, log_: Callable[[str], None] | None = None) -> None:
        """Upload again whatever is missing (a re-execution after a failed publish removed it)."""
        if not self.objects or self.storage is None:
            return
        listing = self.storage.list(event_prefix(self.event_id))
        missing = [o for k, o in self.objects.items() if listing.get(k) != o.size]
        if not missing:
            return
        if log_:
            log_(f"media: {len(missing)} stored objects missing; uploading them again")
        with _ArchiveReader(self.archive_path, self.archive_sha256) as reader:
            for obj in missing:
                with _spool() as spool:
                    if obj.member is not None:
                        sha256, size = reader.copy(obj.member, spool)
                    else:
                        try:
                            fetch(obj.url or "", self.policy, spool)
                        except FetchError as exc:
                            raise _failed(None, f"cannot fetch {obj.url} again: {exc}") from exc
                        sha256, size = _digest(spool)
                    if sha256 != obj.sha256:
                        source = obj.member or obj.url
                        raise _failed(None, f"media {source!r} changed since it was stored; import again")
                    spool.seek(0)
                    try:
                        self.storage.put(obj.key, spool, size, sha256, obj.content_type)
                    except StorageError as exc:
                        raise _failed(None, str(exc)) from exc
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

    def after_commit(self) -> None:
        """Delete the objects the event's rows no longer point at. The import has committed: a failure
        here only leaves unreferenced objects behind, so it is logged, not raised."""
        stale = (self.previous | set(self.uploaded)) - set(self.objects)
        if not stale or self.storage is None:
            return
        try:
            self.counts["deleted"] += self.storage.delete(sorted(stale))
        except Exception as exc:  # noqa: BLE001 - committed already; never fail the import now
            log.warning("media: %s; %d unreferenced objects left in %s", exc, len(stale), self.storage.describe())

    def discard(self, engine: Engine | None = None) -> None:
        """The import failed: delete the objects it uploaded (never one the database points at)."""
        if not self.uploaded or self.storage is None:
            return
        keep: set[str] = set()
        if engine is not None:
            with contextlib.suppress(Exception):  # the database may be what failed; the keys are ours anyway
                keep = referenced_keys(engine, self.storage, self.event_id)
        remove_uploads(self.storage, sorted(set(self.uploaded) - keep))
        self.uploaded = []

    def replan(self, engine: Engine, validated: ValidatedArchive, plans: dict[str, ModelPlan]) -> MediaPlan:
        """The plans were made again (a concurrent import committed first): store for the new ones."""
        self.discard(engine)
        if self.storage is None:
            return MediaPlan(self.event_id)
        return prepare(engine, self.storage, validated, plans, policy=self.policy)

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
    policy: FetchPolicy | None = None,
    progress: Callable[[str], None] | None = None,
    concurrency: int | None = None,
) -> MediaPlan:
    """Store the archive's media for ``plans`` and return the plan of the columns. Raises ImportFailed
    (after removing what it uploaded) when an object cannot be stored."""
    policy = policy or FetchPolicy()
    event_id = validated.target.event_id
    plan = MediaPlan(event_id, storage, policy, validated.path, validated.sha256)
    if validated.unchanged or validated.normalised is None:
        return plan  # nothing changed: the stored media are the ones of the last import
    finder = _MemberFinder(getattr(validated, "media", {}) or {})
    items: list[_Item] = []
    current_by_model: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}
    for spec in MEDIA_MODELS:
        current = {} if validated.target.is_new else _current(engine, spec, event_id)
        for _key, (_id, values, _paths) in current.items():
            plan.previous |= _keys_of(storage, event_id, values.values())
        model_plan = plans[spec.name]
        planned = {row["source_key"]: row["id"] for row in [*model_plan.inserts, *model_plan.updates]}
        records = [validated.normalised.event] if spec is EVENT else validated.records(spec)
        rows: dict[int, RowMedia] = {}
        current_by_model[spec.name] = {}
        for record in records:
            if record is None:
                continue
            row_id = planned.get(record.source_key)
            if row_id is None and record.source_key in current:
                row_id = current[record.source_key][0]
            if row_id is None:
                continue
            row = RowMedia(record.source_id, {}, {}, record.extra)
            for media in spec.media:
                items.extend(_item(plan, finder, spec, media, row_id, row, record.values.get(media.column)))
            rows[row_id] = row
            if record.source_key in current:
                _id, values, paths = current[record.source_key]
                current_by_model[spec.name][row_id] = (values, paths)
        plan.rows[spec.name] = rows
    _store(plan, items, progress, concurrency)
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


def _item(
    plan: MediaPlan, finder: _MemberFinder, spec: ModelSpec, media: Media, row_id: int, row: RowMedia, raw: Any
) -> list[_Item]:
    """What to store for one column of one record, or nothing (the value stays, or is emptied with a warning)."""
    row.values[media.column] = raw
    if not isinstance(raw, str) or not raw.strip():
        return []
    if is_url(raw):
        if plan.policy.allows(raw):
            return [_Item(spec, media, row_id, row, raw, url=raw.strip())]
        plan.counts["kept_urls"] += 1
        return []
    member, how = finder.find(raw)
    if member is None:
        plan.warnings.append(
            Problem(spec.files[0], row.source_id, media.column, f"media file {raw!r} is not in the archive; left empty")
        )
        plan.counts["missing"] += 1
        row.values[media.column] = None
        row.archive_paths[media.column] = raw
        return []
    if how:
        plan.warnings.append(
            Problem(spec.files[0], row.source_id, media.column, f"media file {raw!r} matched {member!r} ({how})")
        )
    return [_Item(spec, media, row_id, row, raw, member=member)]


def _store(
    plan: MediaPlan, items: list[_Item], progress: Callable[[str], None] | None, concurrency: int | None
) -> None:
    """Copy every item to storage; on any failure remove what was uploaded and raise ImportFailed.

    The main thread reads (zip members are read one at a time) and hashes; uploads
    run on a few threads, with a bounded number of files waiting for them.
    """
    if not items:
        return
    storage = plan.storage
    assert storage is not None
    total = len(items)
    step = 1 if total <= 50 else max(1, total // 20)
    workers = max(1, concurrency or int(os.environ.get(CONCURRENCY_ENV) or 8))
    in_flight: dict[Future, tuple[_Item, StoredObject]] = {}
    errors: list[ImportFailed] = []

    def settle(futures: Iterable[Future]) -> None:
        for future in futures:
            item, obj = in_flight.pop(future)
            exc = future.exception()
            if exc is None:
                plan.uploaded.append(obj.key)
                plan.counts["uploaded"] += 1
                plan.counts["bytes_uploaded"] += obj.size
            else:
                errors.append(_failed(item, f"cannot store media {item.raw!r}: {exc}"))

    try:
        listing = storage.list(event_prefix(plan.event_id))
    except StorageError as exc:
        raise _failed(items[0], str(exc)) from exc
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-upload")
    try:
        with _ArchiveReader(plan.archive_path, plan.archive_sha256) as reader:
            for n, item in enumerate(items, 1):
                if errors:
                    break
                read = _read(plan, reader, item)
                if read is not None:
                    obj, spool = read
                    item.row.values[item.media.column] = storage.url(obj.key)
                    item.row.archive_paths[item.media.column] = item.raw
                    plan.objects[obj.key] = obj
                    if listing.get(obj.key) == obj.size:
                        plan.counts["reused"] += 1
                        spool.close()
                    else:
                        in_flight[pool.submit(_upload, storage, obj, spool)] = (item, obj)
                        if len(in_flight) >= 2 * workers:
                            settle(wait(list(in_flight), return_when=FIRST_COMPLETED).done)
                if progress and (n % step == 0 or n == total):
                    progress(f"media {n}/{total}")
    except ImportFailed as exc:
        errors.append(exc)
    except BaseException:
        errors.append(_failed(None, "interrupted while storing media"))
        raise
    finally:
        settle(wait(list(in_flight)).done)
        pool.shutdown(wait=True)
        if errors:
            _remove(plan)
    if errors:
        raise errors[0]


def _read(plan: MediaPlan, reader: _ArchiveReader, item: _Item) -> tuple[StoredObject, IO[bytes]] | None:
    """The item's bytes, spooled and hashed, and the object to store them as (None: a fetch failed, URL kept)."""
    spool = _spool()
    try:
        if item.member is not None:
            sha256, size = reader.copy(item.member, spool, item)
            name, content_type = item.member, None
        else:
            try:
                content_type = fetch(item.url or "", plan.policy, spool)
            except FetchError as exc:
                problem = Problem(item.spec.files[0], item.row.source_id, item.media.column, f"{exc}; URL kept")
                plan.warnings.append(problem)
                spool.close()
                return None
            sha256, size = _digest(spool)
            name = urlsplit(item.url or "").path
            plan.counts["fetched"] += 1
        content_type = _content_type(content_type) or mimetypes.guess_type(name)[0]
        key = object_key(plan.event_id, item.media, item.row_id, sha256, name)
        obj = StoredObject(key, sha256, size, content_type, item.member, item.url)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return obj, spool


def _upload(storage: Storage, obj: StoredObject, spool: IO[bytes]) -> None:
    try:
        storage.put(obj.key, spool, obj.size, obj.sha256, obj.content_type)
    finally:
        spool.close()


def _remove(plan: MediaPlan) -> None:
    """Remove this import's uploads after a failure while storing."""
    if plan.uploaded and plan.storage is not None:
        remove_uploads(plan.storage, sorted(set(plan.uploaded)))
    plan.uploaded = []


def remove_uploads(storage: Storage, keys: list[str]) -> bool:
    """Delete a failed import's uploads. The store is often what failed (an endpoint gone for a moment),
    so a failed delete is tried again, with growing pauses, for up to ``EVENT_PIPELINE_MEDIA_CLEANUP_SECONDS``
    (default 30); after that the keys left behind are logged, one warning naming them all."""
    deadline = time.monotonic() + float(os.environ.get(CLEANUP_ENV) or CLEANUP_SECONDS)
    pause = 0.5
    while True:
        try:
            storage.delete(keys)
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


def object_key(event_id: int, media: Media, row_id: int, sha256: str, name: str) -> str:
    """``events/{event_id}/<reference layout>/{sha256}{ext}``."""
    suffix = PurePosixPath(name).suffix.lower()
    ext = suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""
    return f"events/{event_id}/{media.key.format(id=row_id)}/{sha256}{ext}"


def _content_type(value: str | None) -> str | None:
    return value if value and re.fullmatch(r"[\w.+-]+/[\w.+-]+", value) else None


def _failed(item: _Item | None, message: str) -> ImportFailed:
    if item is None:
        return ImportFailed([Problem(None, None, None, message)])
    return ImportFailed([Problem(item.spec.files[0], item.row.source_id, item.media.column, message)])


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

    def copy(self, member: str, sink: IO[bytes], item: _Item | None = None) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        try:
            with self._open().open(member) as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
        except ZIP_ERRORS as exc:
            raise _failed(item, f"cannot read media file {member!r} from the zip: {exc}") from exc
        return digest.hexdigest(), size

    def close(self) -> None:
        if self._zip is not None:
            copy = self._zip.fp
            self._zip.close()
            if copy is not None:
                copy.close()
            self._zip = None


class _MemberFinder:
    """Finds the zip member an archive path names: exactly (no leading slash, NFC), else by a few
    unambiguous repairs, each reported as a warning by the caller."""

    def __init__(self, media: dict[str, str]):
        self.media = media
        self._folded: dict[str, list[str]] | None = None

    def find(self, raw: str) -> tuple[str | None, str | None]:
        key = media_key(raw.strip())
        if key in self.media:
            return self.media[key], None
        repairs = (
            (lambda: media_key(posixpath.normpath(key)) if _UNCLEAN.search(key) else None, "path normalised"),
            (lambda: media_key(unquote(key)) if "%" in key else None, "percent-decoded"),
            (lambda: _mojibake(key), "mis-encoded name repaired"),
        )
        for repair, how in repairs:
            candidate = repair()
            if candidate and candidate != key and candidate in self.media:
                return self.media[candidate], how
        if self._folded is None:
            self._folded = {}
            for name in self.media:
                self._folded.setdefault(name.casefold(), []).append(name)
        same = self._folded.get(key.casefold(), [])
        if len(same) == 1:
            return self.media[same[0]], "matched ignoring case"
        return None, None


_UNCLEAN = re.compile(r"//|(^|/)\.\.?(/|$)")  # what posixpath.normpath would change in a relative path


def _mojibake(text: str) -> str | None:
    """UTF-8 that was decoded as Windows-1252 or Latin-1 (``FranÃ§ois`` for ``François``), decoded right."""
    if text.isascii():
        return None
    for encoding in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(encoding).decode("utf-8")
        except UnicodeError:
            continue
        if fixed != text:
            return media_key(fixed)
    return None


def _current(engine: Engine, spec: ModelSpec, event_id: int) -> dict[str, tuple[int, dict[str, Any], dict]]:
    """The event's rows of one model: source key -> (id, media column values, extra's archive paths)."""
    table = TABLES[spec.name]
    owner = table.c.id if spec is EVENT else table.c.event_id
    columns = [m.column for m in spec.media]
    # Only extra's archive paths, not the whole of it: a fraction of the bytes to read and decode.
    paths_of = table.c.extra[ARCHIVE_PATHS].label("paths")
    query = sa.select(table.c.source_key, table.c.id, paths_of, *[table.c[c] for c in columns]).where(owner == event_id)
    found = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            paths = row.paths if isinstance(row.paths, dict) else {}
            found[row.source_key] = (row.id, {c: row._mapping[c] for c in columns}, paths)
    return found


def _keys_of(storage: Storage, event_id: int, values: Iterable[Any]) -> set[str]:
    prefix = event_prefix(event_id)
    keys = set()
    for value in values:
        if isinstance(value, str):
            key = storage.key_for_url(value)
            if key and key.startswith(prefix):
                keys.add(key)
    return keys


def referenced_keys(engine: Engine, storage: Storage, event_id: int) -> set[str]:
    """The stored objects the event's rows point at now."""
    keys: set[str] = set()
    for spec in MEDIA_MODELS:
        for _id, values, _paths in _current(engine, spec, event_id).values():
            keys |= _keys_of(storage, event_id, values.values())
    return keys


# -- small helpers ---------------------------------------------------------


def _spool() -> tempfile.SpooledTemporaryFile:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


def _digest(spool: IO[bytes]) -> tuple[str, int]:
    spool.seek(0)
    digest = hashlib.file_digest(spool, "sha256")
    return digest.hexdigest(), spool.seek(0, os.SEEK_END)  # the size, however file_digest read it
