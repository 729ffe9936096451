"""The import as three plain steps the Dagster assets call.

1. :func:`validate_archive`: read and normalise the whole archive; any error
   stops the import before a single write.
2. :func:`plan_step`: one model's id map and planned writes (one per asset).
3. :func:`publish_step`: every plan in one transaction, with the SUCCESS row
   of ``import_jobs``.

Kept free of Dagster so they can be tested and reused (``validate`` command).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from event_pipeline.media.check import Digest, check_media
from event_pipeline.model.catalog import EVENT, LINK_TABLE, MODELS, ModelSpec, upstream
from event_pipeline.model.schema import TABLES, events
from event_pipeline.plan.diff import (
    EventTarget,
    ModelPlan,
    count_links,
    event_target,
    plan_event,
    plan_links,
    plan_model,
)
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish import import_log, result
from event_pipeline.publish.write import ConcurrentImport, publish
from event_pipeline.read.archive import read_archive
from event_pipeline.read.normalise import Normalised, normalise

if TYPE_CHECKING:
    from event_pipeline.media import MediaPlan


@dataclass
class ValidatedArchive:
    """The ``archive`` asset's output: a checked archive and where it goes.

    Pickled (for a re-execution from failure) without its normalised records,
    which are most of an import's memory and pickle to hundreds of MB: they
    are read again from the archive on first use, after checking that its
    bytes are still the ones validated.
    """

    key: str
    path: str
    sha256: str
    target: EventTarget
    unchanged: bool  # same bytes as the last successful import: nothing to do
    _normalised: Normalised | None = field(repr=False)
    warnings: list[Problem]
    media: dict[str, str] = field(default_factory=dict)  # the zip's media files: normalised path -> member
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)  # see Normalised.unmapped
    media_digests: dict[str, Digest] = field(default_factory=dict)  # member -> its bytes' sha256 and size

    @property
    def normalised(self) -> Normalised | None:
        if self._normalised is None and not self.unchanged:
            self._normalised = _reread(Path(self.path), self.sha256)
        return self._normalised

    def records(self, spec: ModelSpec) -> list:
        return self.normalised.records.get(spec.name, []) if self.normalised else []

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_normalised": None}


def _reread(path: Path, sha256: str) -> Normalised:
    """The normalised archive again, in a later process of the same run (re-execution from failure)."""
    with read_archive(path) as archive:
        if archive.sha256 != sha256:
            raise ImportFailed(
                [Problem(path.name, None, None, "the archive changed since this run validated it; start a new import")]
            )
        with _gc_paused():
            return normalise(archive)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing and normalising allocate millions of small objects and free none of them; Python's
    cyclic GC would traverse them again and again (it was half the time of these steps, and ~4 s of
    CPU in the later steps of a 100k-session import). The collector is off while they are made, and
    they are then frozen (left out of collections; reference counting still frees them) until
    :func:`publish_step` ends (or the bulk import of the archive fails) and :func:`release_frozen`
    unfreezes them, so a long-lived worker keeps collecting as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()  # only what a valid archive produced: a failed validation leaves nothing frozen
    finally:
        if enabled:
            gc.enable()


def release_frozen() -> None:
    """Make what validation froze collectable again; called when an import ends, however it ends."""
    gc.unfreeze()


def validate_archive(
    engine: Engine, path: str | Path, key: str, *, force: bool = False, reserve: bool = True
) -> ValidatedArchive:
    """Read, normalise and cross-check the archive. Raises ImportFailed listing every error.

    The archive's bytes are copied and hashed first, in one pass, and read only from that copy (see
    ``archive.snapshot``): the same bytes as the last successful import of the key are not even
    parsed, and replacing the file meanwhile cannot mix two versions."""
    with read_archive(path) as archive:
        problems = archive.problems
        sha256 = archive.sha256
        if not sha256:
            raise ImportFailed(problems.errors, problems.warnings)  # the file cannot be read
        target = event_target(engine, key, reserve=False)
        if not force and target.previous_sha256 == sha256:
            return ValidatedArchive(key, str(path), sha256, target, True, None, [])
        if problems.errors and not archive.members:
            raise ImportFailed(problems.errors, problems.warnings)  # not a zip we can read at all
        with _gc_paused():
            # Normalise even after a JSON error elsewhere, so every problem is reported at once.
            normalised = normalise(archive)
            # Every media member read, from the same private copy, before any write.
            media = check_media(archive.zipfile or archive.path, archive.media, normalised)
            problems.errors.extend(media.errors)
            problems.warnings.extend(media.warnings)
            if problems.errors:
                raise ImportFailed(problems.errors, problems.warnings)
    if target.is_new and reserve:
        target = event_target(engine, key)  # a new event's id is reserved only for a valid archive
    warnings = normalised.problems.warnings
    return ValidatedArchive(
        key,
        str(path),
        sha256,
        target,
        False,
        normalised,
        warnings,
        archive.media,
        normalised.unmapped,
        media.digests,
    )


def _unchanged_plan(engine: Engine, spec: ModelSpec, event_id: int) -> ModelPlan:
    """The id map and row count of an event whose archive has not changed, read back from its rows."""
    table = TABLES[spec.name]
    owner = table.c.id if spec is EVENT else table.c.event_id
    with engine.connect() as conn:
        own_ids = sa.select(table.c.source_id, table.c.id).where(owner == event_id)
        id_map = dict(conn.execute(own_ids.where(table.c.source_id == table.c.source_key)).all())
        count = conn.execute(sa.select(sa.func.count()).where(owner == event_id)).scalar_one()
        links = count_links(conn, event_id) if spec.name == "sessions" else 0
    return ModelPlan(spec.name, event_id, id_map, unchanged=count, links_total=links)


def plan_step(
    engine: Engine,
    spec: ModelSpec,
    validated: ValidatedArchive,
    maps: dict[str, dict[str, int]],
    *,
    reserve: bool = True,
) -> ModelPlan:
    """Plan one model; ``maps`` holds the id maps of the models it references."""
    target = validated.target
    if validated.unchanged:
        return _unchanged_plan(engine, spec, target.event_id)
    if spec is EVENT:
        return plan_event(target, validated.normalised.event, validated.key, validated.normalised.shape)
    plan = plan_model(
        engine, spec, validated.records(spec), target.event_id, maps, is_new_event=target.is_new, reserve=reserve
    )
    if spec.name == "sessions":
        wanted, plan.links_add, plan.links_remove = plan_links(
            engine, target.event_id, validated.normalised.links, plan.id_map, maps["speakers"]
        )
        plan.links_total = len(wanted)
    return plan


def summarise(plans: dict[str, ModelPlan]) -> tuple[dict[str, int], dict[str, Any]]:
    """Row counts per table and the diff (totals and per model)."""
    counts = {spec.table: plans[spec.name].count for spec in MODELS}
    sessions = plans["sessions"]
    counts[LINK_TABLE] = sessions.links_total
    by_model = {spec.name: plans[spec.name].diff() for spec in MODELS}
    diff: dict[str, Any] = {
        k: sum(d[k] for d in by_model.values()) for k in ("created", "updated", "deleted", "unchanged")
    }
    diff["links"] = {"added": len(sessions.links_add), "removed": len(sessions.links_remove)}
    diff["by_model"] = by_model
    return counts, diff


def plan_all(engine: Engine, validated: ValidatedArchive, *, reserve: bool = True) -> dict[str, ModelPlan]:
    """Every model's plan in catalog order, as the model assets compute them one by one."""
    plans: dict[str, ModelPlan] = {}
    for spec in MODELS:
        maps = {name: plans[name].id_map for name in [EVENT.name, *upstream(spec)] if name in plans}
        plans[spec.name] = plan_step(engine, spec, validated, maps, reserve=reserve)
    return plans


PUBLISH_ATTEMPTS = 3


def publish_step(
    engine: Engine,
    validated: ValidatedArchive,
    plans: dict[str, ModelPlan],
    run_id: str,
    *,
    before_commit: Callable[[Connection], None] | None = None,
    media: MediaPlan | None = None,
) -> dict[str, Any]:
    """Write every plan and the SUCCESS job row in one transaction; return the result JSON.

    If another import of the same key committed since the plans were made
    (the CLI and the sensor at once), the plans are stale: plan again against
    the new state and retry, so concurrent imports end up one after the other.

    ``media`` (the media asset's output) puts the stored URLs into the rows in
    the same transaction; if the import fails, the objects it uploaded are
    removed, and after the commit those no row points at any more.
    """
    try:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                outcome = _publish_once(engine, validated, plans, run_id, before_commit, media)
            except (ConcurrentImport, IntegrityError):
                if attempt == PUBLISH_ATTEMPTS or validated.unchanged:
                    if media is not None:
                        media.discard(engine)
                    raise
                validated = replace(validated, target=event_target(engine, validated.key))
                plans = plan_all(engine, validated)
                if media is not None:
                    media = media.replan(engine, validated, plans)
                continue
            except BaseException:
                if media is not None:
                    media.discard(engine)
                raise
            if media is not None:
                media.after_commit(engine)
                outcome["media"] = media.summary()
            return outcome
        raise AssertionError("unreachable")
    finally:
        release_frozen()


def _publish_once(
    engine: Engine,
    validated: ValidatedArchive,
    plans: dict[str, ModelPlan],
    run_id: str,
    before_commit: Callable[[Connection], None] | None,
    media: MediaPlan | None = None,
) -> dict[str, Any]:
    media_updates: dict[str, list[dict[str, Any]]] = {}
    if media is not None and not validated.unchanged:
        media.ensure_stored(engine, run_id)  # uploads happen before the commit
        plans, media_updates = media.apply(plans)
    counts, diff = summarise(plans)
    event_id = validated.target.event_id
    warnings = validated.warnings + (media.warnings if media is not None else [])
    with engine.begin() as conn:
        if not validated.unchanged:
            publish(conn, plans, validated.sha256, before_commit=before_commit)
            if media is not None:
                media.write(conn, media_updates)
        name, identifier = conn.execute(
            sa.select(events.c.name, events.c.identifier).where(events.c.id == event_id)
        ).one()
        outcome = result.success(
            event_name=name,
            event_id=event_id,
            identifier=identifier,
            key=validated.key,
            counts=counts,
            diff=diff,
            warnings=warnings,
            unmapped=validated.unmapped,
            unchanged_archive=validated.unchanged,
        )
        import_log.close_job(
            conn,
            key=validated.key,
            run_id=run_id,
            state="SUCCESS",
            event_id=event_id,
            archive_path=validated.path,
            archive_sha256=validated.sha256,
            result=outcome["result"],
            counts=counts,
            diff=diff,
            warnings=result.stored(warnings),  # every warning kept, not only those the result lists
            unmapped=outcome["unmapped"],
        )
    return outcome
