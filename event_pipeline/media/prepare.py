"""Planning an import's media (the ``media`` asset): which objects to store, storing them, the rows' new values.

:func:`prepare` goes over every media column of the catalog (``ModelSpec.media``)
for every record of the archive:

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
  allow-listed types (``served_types.py``);
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
what killed imports of the same key left behind. The storing itself is
``upload.py``; the result, a :class:`~event_pipeline.media.media_plan.MediaPlan`,
is applied by the import's publish step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from event_pipeline.media import claims
from event_pipeline.media.check import MemberFinder, media_records
from event_pipeline.media.fetch import FetchPolicy, is_url
from event_pipeline.media.media_plan import MediaPlan
from event_pipeline.media.objects import ARCHIVE_PATHS, RowMedia, StoredObject, UrlToFetch, failed, object_key
from event_pipeline.media.referenced import current_keys, current_media, referencing
from event_pipeline.media.served_types import served_type
from event_pipeline.media.storage import Storage, StorageError, kill_point
from event_pipeline.media.upload import store
from event_pipeline.model.catalog import MEDIA_MODELS, Media, ModelSpec
from event_pipeline.problems import Problem

if TYPE_CHECKING:
    from event_pipeline.importer import ValidatedArchive
    from event_pipeline.plan.diff import ModelPlan


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
        plan.counts["swept"] = claims.sweep(engine, storage, validated.key, run_id, referencing(storage))
    except StorageError as exc:
        raise failed(None, f"cannot sweep what an interrupted import left: {exc}") from exc
    if validated.unchanged or validated.normalised is None:
        return plan  # nothing changed: the stored media are the ones of the last import
    finder = MemberFinder(validated.media or {})
    items: list[UrlToFetch] = []
    current_by_model: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}
    written: dict[str, set[int]] = {}  # per model, the rows its plan inserts or updates
    for spec in MEDIA_MODELS:
        current = {} if validated.target.is_new else current_media(engine, spec, event_id)
        plan.previous |= current_keys(storage, namespace, event_id, current)
        model_plan = plans[spec.name]
        planned = model_plan.written_ids(validated.records(spec))
        written[spec.name] = set(planned.values())
        rows: dict[int, RowMedia] = {}
        current_by_model[spec.name] = {}
        for record in media_records(validated.normalised, spec):
            row_id = planned.get(record.source_key)
            if row_id is None and record.source_key in current:
                row_id = current[record.source_key][0]
            if row_id is None:
                continue
            row = RowMedia(record.source_id, {}, {}, record)
            for media in spec.media:
                item = _plan_value(plan, finder, validated, spec, media, row_id, row, record.value(media.column))
                if item is not None:
                    items.append(item)
            rows[row_id] = row
            if record.source_key in current:
                _id, values, paths = current[record.source_key]
                current_by_model[spec.name][row_id] = (values, paths)
        plan.rows[spec.name] = rows
    store(engine, plan, items, progress, concurrency)
    kill_point("media-stored")  # tests: kill -9 between the uploads and the commit
    _settle(plan, current_by_model, written)
    return plan


def _settle(
    plan: MediaPlan,
    current_by_model: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]],
    written: dict[str, set[int]],
) -> None:
    """Once the media are stored: keep only the rows with something to write, and note those whose stored
    media changed (``current_by_model``: per model, row id -> its stored media values and archive paths;
    ``written``: per model, the rows its plan writes)."""
    for name, rows in plan.rows.items():
        stored = current_by_model[name]
        changed = set()
        for row_id, row in rows.items():
            if row_id in stored:
                values, paths = stored[row_id]
                # The paths the row's extra will hold: the archive's values where media differ, else what
                # the record's extra itself holds under that key. That is read (from the record's
                # spilled body) only when the stored row has paths: a record whose extra had the key
                # would have given them to the stored row too, unless it changed, and a changed record
                # is written whole anyway.
                if row.archive_paths:
                    desired = dict(row.archive_paths)
                else:
                    desired = (row.record.extra.get(ARCHIVE_PATHS) or {}) if paths else {}
                if values != row.values or (paths or {}) != desired:
                    changed.add(row_id)
        for row_id, row in rows.items():
            # The record's extra is kept (read from its body) only for a row written without its planned
            # row (its media alone changed); the others get it from the row as it is written.
            if row_id in changed and row_id not in written[name]:
                row.extra = row.record.extra
            row.record = None  # not in the plan's pickle
        plan.changed[name] = changed
        # A row without archive paths holds the record's own values (a URL kept, an empty column): its
        # planned row is already right, and the rows of 100 000 sessions' kept URLs were 20 MiB of plan.
        plan.rows[name] = {i: r for i, r in rows.items() if i in changed or r.archive_paths}


def _plan_value(
    plan: MediaPlan,
    finder: MemberFinder,
    validated: ValidatedArchive,
    spec: ModelSpec,
    media: Media,
    row_id: int,
    row: RowMedia,
    raw: Any,
) -> UrlToFetch | None:
    """One column of one record: the stored object's URL for a file of the zip, a URL to fetch (returned),
    or the value kept or emptied."""
    row.values[media.column] = raw
    if not isinstance(raw, str) or not raw.strip():
        return None
    if is_url(raw):
        if plan.policy.allows(raw):
            return UrlToFetch(spec, media, row_id, row, raw, url=raw.strip())
        plan.counts["kept_urls"] += 1
        return None
    member, _how = finder.find(raw)  # validation warned about repairs and missing files
    if member is None:
        plan.counts["missing"] += 1
        row.values[media.column] = None
        row.archive_paths[media.column] = raw
        return None
    digest = (validated.media_digests or {}).get(member)
    where = Problem(spec.files[0], row.source_id, media.column, raw)
    if digest is None:  # validation reads every member named; a plan from another version of this code
        raise failed(where, f"media file {raw!r} was not checked when the archive was validated; import it again")
    suffix, content_type = served_type(member)
    key = object_key(plan.namespace, plan.event_id, digest.sha256, suffix)
    plan.objects.setdefault(key, StoredObject(key, digest.sha256, digest.size, content_type, member=member))
    plan.where.setdefault(key, where)
    assert plan.storage is not None
    row.values[media.column] = plan.storage.url(key)
    row.archive_paths[media.column] = raw
    return None
